// The home page: stop the default server, and stop, delete or create named servers.
// Every change goes through the REST API (hub.js), then the page is shown again.
document.addEventListener("DOMContentLoaded", () => {
  const message = document.getElementById("named-message");

  // A stop goes on in the background (202): look again shortly.
  const reloadAfter = (result) =>
    setTimeout(() => window.location.reload(), result.status === 202 ? 1000 : 0);

  const act = (button, busyText, call) => {
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = busyText;
      try {
        reloadAfter(await call());
      } catch (error) {
        button.disabled = false;
        hubShowError(message || document.body, error);
      }
    });
  };

  const stop = document.getElementById("stop");
  if (stop) act(stop, "Stopping…", () => hubApi("DELETE", stop.dataset.url));
  for (const button of document.querySelectorAll("button[data-stop-url]")) {
    act(button, "Stopping…", () => hubApi("DELETE", button.dataset.stopUrl));
  }
  for (const button of document.querySelectorAll("button[data-delete-url]")) {
    act(button, "Deleting…", () => hubApi("DELETE", button.dataset.deleteUrl, { remove: true }));
  }

  const form = document.getElementById("new-server");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = form.elements.server_name.value.trim();
      // The spawn page starts it (or shows the options form) and says what went wrong.
      window.location.assign(form.dataset.spawnUrl + encodeURIComponent(name));
    });
  }
});
