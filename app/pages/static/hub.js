// What every page's script needs: calls to the hub's REST API with the session's XSRF token.
window.hubApi = async (method, url, body) => {
  const xsrf = document.querySelector('meta[name="xsrf-token"]').content;
  const headers = { "X-XSRFToken": xsrf, Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch (e) {
      // Not JSON: the status says enough.
    }
    throw new Error(message);
  }
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null };
};

// Show an error where the page keeps them (an element with role=alert).
window.hubShowError = (element, error) => {
  element.textContent = error.message || String(error);
};
