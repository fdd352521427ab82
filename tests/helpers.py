"""Small helpers shared by tests."""

import contextlib
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.adapters import HTTPAdapter
from sqlalchemy import select

from app.db import get_db
from app.models import Server, User

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Return count distinct free ports (free_port() twice can return the same one)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


# What a browser sends with a top-level navigation (a link, a typed URL, a form), which
# the hub requires before it believes the login cookie of a request without its XSRF
# token (app.auth.session.is_navigation). Tests that act as a person's browser send it.
NAVIGATION = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
# What a page's script sends with fetch() on its own origin.
SCRIPT_FETCH = {
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Site": "same-origin",
}


class BrowserClient(FlaskClient):
    """Flask's test client as a browser's navigations: every request says it is one
    (NAVIGATION) unless the test's own headers say otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base.update(
            {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in NAVIGATION.items()}
        )


class LocalhostAdapter(HTTPAdapter):
    """Sends *.localhost to 127.0.0.1, as browsers do (per-user origins on a laptop),
    where glibc without nss-myhostname resolves no such name."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if not (parts.hostname or "").endswith(".localhost"):
            return super().send(request, **kwargs)
        direct = request.copy()
        direct.headers["Host"] = parts.netloc
        direct.url = parts._replace(netloc=f"127.0.0.1:{parts.port or 80}").geturl()
        response = super().send(direct, **kwargs)
        response.url, response.request = request.url or "", request
        return response


def browser_session() -> requests.Session:
    """A requests session as a person's browser: navigations, *.localhost on loopback."""
    session = requests.Session()
    session.headers.update(NAVIGATION)
    session.mount("http://", LocalhostAdapter())
    return session


def header_values(response: Any, name: str) -> list[str]:
    """Every value a response sent under name, matched case-insensitively (duplicates too)."""
    return [value for key, value in response.headers.items() if key.lower() == name.lower()]


XSRF_IN_PAGE = re.compile(
    r'name="_xsrf" value="([^"]+)"|<meta name="xsrf-token" content="([^"]+)">'
)


def xsrf_token(html: str) -> str:
    """The XSRF token a hub page carries (the login form's field, or the meta tag for scripts)."""
    match = XSRF_IN_PAGE.search(html)
    assert match, html
    return match.group(1) or match.group(2)


def server_rows(app: Flask) -> list[tuple[str, str, str]]:
    """(user, server name, state) of every server row of a hub app, stopped ones too."""
    with get_db(app).read() as session:
        rows = session.execute(select(User.name, Server.name, Server.state).join(Server.user))
        return sorted(tuple(row) for row in rows)


def wait_for(condition: Callable[[], T], timeout: float = 30, interval: float = 0.1) -> T:
    """Call condition() every interval seconds until it returns something truthy; return that.

    The one way tests wait for something to happen (never a fixed sleep). It is
    checked once more at the deadline, then the test fails with the last value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)
