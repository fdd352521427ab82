// Follow the spawn's progress events: each message joins the list as it comes; go to
// the server when it is ready, or show the failure with Relaunch.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("pending");
  const bar = document.getElementById("progress-bar");
  const message = document.getElementById("progress-message");
  const log = document.getElementById("progress-log");
  // An EventSource sends no header: the XSRF token that lets the hub believe its
  // cookie goes in the URL (as JupyterHub's own page does).
  const url = new URL(box.dataset.progressUrl, window.location.href);
  url.searchParams.set("_xsrf", document.querySelector('meta[name="xsrf-token"]').content);
  const source = new EventSource(url);
  let finished = false;

  const showFailure = (text) => {
    document.getElementById("pending-heading").textContent = "Spawn failed";
    document.getElementById("pending-hint").hidden = true;
    document.getElementById("failure-message").textContent = text;
    document.getElementById("spawn-failure").hidden = false;
    document.getElementById("relaunch").focus();
  };

  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    bar.value = data.progress || 0;
    message.textContent = data.message || "";
    const item = document.createElement("li");
    item.textContent = data.message || "";
    log.appendChild(item);
    if (data.ready) {
      finished = true;
      source.close();
      window.location.replace(data.url);
    } else if (data.failed) {
      finished = true;
      source.close();
      showFailure(data.message || "Spawn failed");
    }
  };
  source.onerror = () => {
    // The stream broke before the end: the page itself knows the current state.
    source.close();
    if (!finished) setTimeout(() => window.location.reload(), 2000);
  };
});
