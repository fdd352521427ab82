// Follow the spawn's progress events; go to the server when it is ready.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("pending");
  const bar = document.getElementById("progress-bar");
  const message = document.getElementById("progress-message");
  const log = document.getElementById("progress-log");
  const source = new EventSource(box.dataset.progressUrl);
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    bar.value = data.progress || 0;
    message.textContent = data.message || "";
    const item = document.createElement("li");
    item.textContent = data.message || "";
    log.appendChild(item);
    if (data.ready) {
      source.close();
      window.location.replace(data.url);
    } else if (data.failed) {
      source.close();
      window.location.reload();
    }
  };
  source.onerror = () => {
    // The stream ended or broke: the page itself knows the current state.
    source.close();
    setTimeout(() => window.location.reload(), 2000);
  };
});
