"""Issue 21, finding 5: the login throttle holds against addresses a client makes up.

X-Forwarded-For is believed only from the proxy (CHP reaches the hub over a Unix
socket only the hub's account can open) or from `trusted_proxies`; a request
straight to the hub's port is its socket's peer, whatever it says. A refused
login of the right password answers exactly like a wrong password.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
import requests

from tests.helpers import xsrf_token
from tests.integration.conftest import Hub, over_the_socket

pytestmark = pytest.mark.integration

# What a user's server (or container) could send straight to the hub's port.
MADE_UP = [
    {"X-Forwarded-For": "203.0.113.1"},
    {"X-Forwarded-For": "203.0.113.2, 198.51.100.2, 192.0.2.2"},  # many hops
    {"X-Real-IP": "203.0.113.3"},
    {"Forwarded": "for=203.0.113.4;proto=https"},
    {"X-Forwarded-For": "2001:db8::5"},
    {"X-Forwarded-For": "::ffff:203.0.113.6"},
    {"X-Forwarded-For": "unknown"},
    {"X-Forwarded-For": "203.0.113.8", "X-Forwarded-Proto": "https"},
]


def _login(base: str, name: str, password: str, headers: dict[str, str]) -> requests.Response:
    """The login form, sent to base (the proxy's or the hub's own address) with headers."""
    session = requests.Session()
    page = session.get(f"{base}/hub/login", headers=headers, timeout=10)
    form = {"username": name, "password": password, "_xsrf": xsrf_token(page.text)}
    return session.post(
        f"{base}/hub/login", data=form, headers=headers, allow_redirects=False, timeout=10
    )


def _failure_keys(hub: Hub) -> set[str]:
    return {key for (key,) in hub.query("SELECT key FROM login_failures")}


def test_made_up_addresses_straight_to_the_hub_are_still_throttled(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory(dummy_password="sesame", login_failure_limit=3, login_failure_window=60)
    # Password spraying: one guess per name, each from a "new" address.
    answers = [
        _login(hub.hub_url, f"victim{i}", "guess", headers).status_code
        for i, headers in enumerate(MADE_UP)
    ]
    assert answers == [403] * 3 + [429] * (len(MADE_UP) - 3)
    assert {k for k in _failure_keys(hub) if k.startswith("addr:")} == {"addr:127.0.0.1"}


def test_the_proxy_says_who_the_client_is(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory(dummy_password="sesame", login_failure_limit=5)
    # Through CHP: what the client claims is not believed, CHP's own word is.
    _login(hub.public_url, "eve", "guess", {"X-Forwarded-For": "203.0.113.7"})
    assert "addr:127.0.0.1" in _failure_keys(hub)
    assert "addr:203.0.113.7" not in _failure_keys(hub)
    # Over the socket only the proxy can open, X-Forwarded-* is the proxy's word.
    forwarded = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    status, cookie, page = over_the_socket(hub, "GET", "/hub/login", forwarded)
    assert status == 200 and "Secure" in cookie
    form = urlencode({"username": "eve", "password": "guess", "_xsrf": xsrf_token(page)})
    headers = {
        **forwarded,
        "Cookie": cookie.split(";")[0],
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert over_the_socket(hub, "POST", "/hub/login", headers, form)[0] == 403
    assert "addr:198.51.100.4" in _failure_keys(hub)
    # Straight to the port, the same claim is not: no Secure cookie.
    direct = requests.get(
        f"{hub.hub_url}/hub/login", headers={"X-Forwarded-Proto": "https"}, timeout=10
    )
    assert "Secure" not in direct.headers["Set-Cookie"]
    assert hub.routes()["/"]["target"].startswith("http+unix://")


def test_trusted_proxies_are_believed(hub_factory: Callable[..., Hub]) -> None:
    # An operator's proxy in front of CHP, on this machine: its X-Forwarded-For counts.
    hub = hub_factory(dummy_password="sesame", trusted_proxies=["127.0.0.0/8"])
    _login(hub.public_url, "eve", "guess", {"X-Forwarded-For": "203.0.113.7"})
    assert "addr:203.0.113.7" in _failure_keys(hub)


def _without_token(html: str) -> str:
    return re.sub(r'value="[^"]*"|content="[^"]*"', "", html)


def test_a_refused_right_password_answers_like_a_wrong_one(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory(dummy_password="sesame", blocked_users=["mallory"], login_failure_limit=20)
    right = _login(hub.public_url, "mallory", "sesame", {})
    wrong = _login(hub.public_url, "mallory", "guess", {})
    assert right.status_code == wrong.status_code == 403
    assert _without_token(right.text) == _without_token(wrong.text)
    assert "Invalid username or password." in right.text
    # The refusal counts as a failure too: the throttle cannot tell them apart either.
    assert hub.query("SELECT failures FROM login_failures WHERE key = 'name:mallory'") == [(2,)]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another account")
def test_no_other_account_can_open_the_hubs_socket(hub_factory: Callable[..., Hub]) -> None:
    # A user's server runs as its own account (the local spawner, the hub as root): the
    # socket is in data_dir (0700), where only the hub's account may enter.
    hub = hub_factory()
    path = hub.data_dir / "hub.sock"
    assert path.is_socket()
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
    tried = subprocess.run(
        ["/usr/bin/python3", "-c", connect],
        user="nobody",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert tried.returncode != 0 and "PermissionError" in tried.stderr


def test_requests_through_the_proxy_to_the_hubs_socket_all_arrive(
    hub_factory: Callable[..., Hub],
) -> None:
    # Keep-alive connections to the socket: one connection per request with `Connection:
    # close` let some of these end in EPIPE and a 503 (the hub answered, then closed).
    hub = hub_factory()
    answers = [
        hub.api("POST", "/services/bad", json={"colour": "red"}).status_code for _ in range(300)
    ]
    assert set(answers) == {400}
