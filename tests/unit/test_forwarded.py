"""app.forwarded: whose X-Forwarded-For the hub believes (issue 21, finding 5)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest

from app.cli import _warn_admin_groups_kept, _warn_passwords_in_path_mode, _warn_unknown_proxy
from app.config import ConfigError, load
from app.forwarded import TrustedProxies
from app.logins import login_keys


def _seen(environ: dict[str, Any], trusted: list[str]) -> dict[str, Any]:
    """The environ the app gets behind TrustedProxies."""
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        got.update(env)
        return []

    TrustedProxies(app, trusted)({"wsgi.url_scheme": "http", **environ}, lambda *a: None)
    return got


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_FORWARDED_FOR": "203.0.113.1"},
        {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 198.51.100.1"},
        {"HTTP_X_REAL_IP": "203.0.113.1"},
        {"HTTP_FORWARDED": "for=203.0.113.1;proto=https"},
        {"HTTP_X_FORWARDED_FOR": "2001:db8::1", "HTTP_X_FORWARDED_PROTO": "https"},
    ],
)
def test_anyone_else_is_their_peer_address(headers: dict[str, str]) -> None:
    seen = _seen({"REMOTE_ADDR": "127.0.0.1", **headers}, trusted=[])
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http"
    assert not {k for k in seen if "FORWARDED" in k or "REAL_IP" in k}


def test_the_unix_socket_is_the_proxy() -> None:
    sock, other = socket.socketpair(socket.AF_UNIX)
    with sock, other:
        seen = _seen(
            {
                "REMOTE_ADDR": "",
                "gunicorn.socket": sock,
                "HTTP_X_FORWARDED_FOR": "made-up, 203.0.113.1",
                "HTTP_X_FORWARDED_PROTO": "http,https",
            },
            trusted=[],
        )
    assert seen["REMOTE_ADDR"] == "203.0.113.1"  # CHP's own hop, not what came before it
    assert seen["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    ("forwarded_for", "protos", "client", "scheme"),
    [
        # CHP (10.0.0.2, trusted) appended the client; the client's claim before it is not read.
        ("198.51.100.9, 203.0.113.5", "https,http", "203.0.113.5", "http"),
        # An operator's proxy (10.0.0.3, trusted) before CHP: one more hop is believed.
        ("198.51.100.9, 203.0.113.5, 10.0.0.3", "https,http", "203.0.113.5", "https"),
        ("::ffff:203.0.113.5", "", "203.0.113.5", "http"),
        ("[2001:db8::7]", "", "2001:db8::7", "http"),
        ("unknown", "", "10.0.0.2", "http"),
        ("", "", "10.0.0.2", "http"),
    ],
)
def test_trusted_proxies_are_read_from_the_right(
    forwarded_for: str, protos: str, client: str, scheme: str
) -> None:
    seen = _seen(
        {
            "REMOTE_ADDR": "10.0.0.2",
            "HTTP_X_FORWARDED_FOR": forwarded_for,
            "HTTP_X_FORWARDED_PROTO": protos,
        },
        trusted=["10.0.0.0/24"],
    )
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == (client, scheme)


@pytest.mark.parametrize(
    ("name", "address", "keys"),
    [
        (" Alice ", "203.0.113.5", ["name:alice", "addr:203.0.113.5"]),
        ("alice", "::ffff:203.0.113.5", ["name:alice", "addr:203.0.113.5"]),
        # One machine holds a whole /64: every address in it is one key.
        ("alice", "2001:db8:1:2:aaaa::1", ["name:alice", "addr:2001:db8:1:2::/64"]),
        ("alice", "2001:db8:1:2:bbbb::9", ["name:alice", "addr:2001:db8:1:2::/64"]),
        ("not a name!", "unix", ["name:not a name!", "addr:unix"]),
    ],
)
def test_login_keys(name: str, address: str, keys: list[str]) -> None:
    assert login_keys(name, address) == keys


def test_a_hub_behind_a_proxy_it_did_not_start_says_whom_it_believes(
    clean_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _warn_unknown_proxy(load(environ={}, overrides={"proxy_auto_start": False}))
    assert "FLASKHUB_TRUSTED_PROXIES" in caplog.text
    caplog.clear()
    trusting = {"proxy_auto_start": False, "trusted_proxies": ["10.0.0.5"]}
    _warn_unknown_proxy(load(environ={}, overrides=trusting))
    _warn_unknown_proxy(load(environ={}))  # the CHP it starts uses its socket
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"trusted_proxies": ["10.0.0.300"]}, "'trusted_proxies': '10.0.0.300'"),
        ({"trusted_proxies": ["proxy.example.org"]}, "is not an address or network"),
        ({"trusted_proxies": [5]}, "is not an address or network"),
        ({"hub_socket": "/run/" + "x" * 200}, "FLASKHUB_HUB_SOCKET to a shorter path"),
    ],
)
def test_bad_proxy_settings_are_named(
    clean_env: Path, overrides: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        load(environ={}, overrides=overrides)


LDAP = {
    "authenticator": "ldap",
    "ldap_url": "ldap://127.0.0.1:9",
    "ldap_search_base": "ou=people,dc=example,dc=org",
    "allowed_groups": ["staff"],
}


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        (LDAP, True),
        ({**LDAP, "ldap_bind_dn": "cn=search,dc=example,dc=org"}, False),
        ({}, False),
    ],
)
def test_admin_groups_that_cannot_be_asked_again_are_said_at_start(
    clean_env: Path, caplog: pytest.LogCaptureFixture, settings: dict[str, object], warned: bool
) -> None:
    """Finding 7: without a way to ask again, leaving an admin group ends admin only at the
    next login; the operator is told so."""
    _warn_admin_groups_kept(load(environ={}, overrides={"admin_groups": ["ops"], **settings}))
    assert ("stays admin until they log in again" in caplog.text) is warned


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"authenticator": "password"}, True),
        ({**LDAP}, True),
        ({"authenticator": "password", "subdomain_host": "https://hub.example.org"}, False),
        ({}, False),
    ],
)
def test_passwords_typed_on_an_origin_servers_share_are_said_at_start(
    clean_env: Path, caplog: pytest.LogCaptureFixture, settings: dict[str, object], warned: bool
) -> None:
    """Path mode with a password form: a server's service worker could show a false one."""
    _warn_passwords_in_path_mode(load(environ={}, overrides=settings))
    assert ("could show them a false login form" in caplog.text) is warned
