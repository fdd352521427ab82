"""A service written with JupyterHub's own HubOAuth, run by integration tests as a
hub-managed service (with .venv-jupyter's Python, where jupyterhub 5 is installed).

After JupyterHub's examples/service-whoami-oauth: `<prefix>` answers the logged-in
user's model (logging the browser in through the hub first); `<prefix>env` answers,
without login, this process's pid and JUPYTERHUB_* environment.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application, RequestHandler, authenticated


class WhoAmIHandler(HubOAuthenticated, RequestHandler):
    @authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(self.get_current_user(), default=str))


class EnvHandler(RequestHandler):
    def get(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith("JUPYTERHUB_")}
        self.write({"pid": os.getpid(), "env": env})


def main() -> None:
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    app = Application(
        [
            (prefix, WhoAmIHandler),
            (f"{prefix}oauth_callback", HubOAuthCallbackHandler),
            (f"{prefix}env", EnvHandler),
        ],
        cookie_secret=os.urandom(32),
    )
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    HTTPServer(app).listen(url.port or 80, url.hostname)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
