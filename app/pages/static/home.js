// Stop My Server: DELETE through the API with the session's XSRF token.
document.addEventListener("DOMContentLoaded", () => {
  const stop = document.getElementById("stop");
  if (!stop) return;
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    stop.textContent = "Stopping…";
    const xsrf = document.querySelector('meta[name="xsrf-token"]').content;
    const response = await fetch(stop.dataset.url, {
      method: "DELETE",
      headers: { "X-XSRFToken": xsrf },
      credentials: "same-origin",
    });
    if (response.status === 202) {
      // Still stopping: look again shortly.
      setTimeout(() => window.location.reload(), 1000);
    } else {
      window.location.reload();
    }
  });
});
