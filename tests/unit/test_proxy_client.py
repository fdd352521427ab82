"""ProxyClient against a real configurable-http-proxy on free loopback ports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
import requests

from proxy.client import ProxyClient, ProxyError
from proxy.launcher import ProxyProcess
from tests.helpers import free_port, free_ports

# Nearly every test runs against a real CHP.
pytestmark = pytest.mark.process

TOKEN = "test-proxy-token"


def serve(respond: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run an http.server with handler class respond in a thread; yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), respond)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def named_backend(name: str) -> type[BaseHTTPRequestHandler]:
    """Return a handler class that answers every GET with "<name> <path>"."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def hub_url() -> Iterator[str]:
    """A backend that stands in for the hub: CHP's default target."""
    yield from serve(named_backend("hub"))


@pytest.fixture
def server_url() -> Iterator[str]:
    """A backend that stands in for a user's server."""
    yield from serve(named_backend("server"))


@pytest.fixture
def chp(tmp_path, hub_url: str) -> Iterator[ProxyProcess]:
    """A running CHP whose default target is hub_url."""
    port, api_port = free_ports(2)
    process = ProxyProcess(
        ip="127.0.0.1",
        port=port,
        api_ip="127.0.0.1",
        api_port=api_port,
        default_target=hub_url,
        error_target=None,
        auth_token=TOKEN,
        log_file=str(tmp_path / "chp.log"),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def client(chp: ProxyProcess) -> Iterator[ProxyClient]:
    """A client of chp's API with fast retries."""
    client = ProxyClient(chp.api_url, TOKEN, timeout=5.0, retries=2, backoff=0.01)
    yield client
    client.close()


def public_get(chp: ProxyProcess, path: str) -> requests.Response:
    """GET path through CHP's public port."""
    return requests.get(f"http://127.0.0.1:{chp.port}{path}", timeout=5)


def test_add_get_list_delete_route(client: ProxyClient, server_url: str) -> None:
    before = datetime.now(UTC)
    data = {"user": "alice", "server_name": "", "jupyterhub": True}

    client.add_route("/user/alice/", server_url, data)

    route = client.get_route("/user/alice/")
    assert route is not None
    assert route["routespec"] == "/user/alice/"
    assert route["target"] == server_url
    assert route["data"] == data
    last_activity = route["last_activity"]
    assert isinstance(last_activity, datetime)
    assert last_activity.utcoffset() == timedelta(0)
    # CHP stamps milliseconds; allow for that truncation.
    assert before - timedelta(seconds=1) <= last_activity <= datetime.now(UTC)

    routes = client.get_all_routes()
    assert set(routes) == {"/", "/user/alice/"}
    assert routes["/user/alice/"] == route
    assert routes["/"]["data"] == {}

    client.delete_route("/user/alice/")
    assert client.get_route("/user/alice/") is None
    assert set(client.get_all_routes()) == {"/"}


@pytest.fixture
def proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY naming a port where nothing listens, loopback not exempted."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")


@pytest.mark.usefixtures("proxy_in_the_environment")
def test_the_proxy_api_is_reached_directly_whatever_proxy_the_environment_names(
    client: ProxyClient, server_url: str
) -> None:
    client.add_route("/user/alice/", server_url, {"user": "alice"})
    assert set(client.get_all_routes()) == {"/", "/user/alice/"}


def test_get_route_root_is_the_root_route(client: ProxyClient, hub_url: str) -> None:
    # CHP answers GET /api/routes/ with the whole table; get_route must still give "/".
    client.add_route("/user/alice/", "http://127.0.0.1:1", {})

    route = client.get_route("/")

    assert route is not None
    assert route["routespec"] == "/"
    assert route["target"] == hub_url


def test_a_data_key_named_target_does_not_redirect(client: ProxyClient, server_url: str) -> None:
    client.add_route("/user/alice/", server_url, {"target": "http://127.0.0.1:1"})

    route = client.get_route("/user/alice/")

    assert route is not None and route["target"] == server_url


def test_get_all_routes_inactive_since(client: ProxyClient, server_url: str) -> None:
    client.add_route("/user/alice/", server_url, {"user": "alice"})
    now = datetime.now(UTC)

    idle_later = client.get_all_routes(inactive_since=now + timedelta(minutes=1))
    idle_before = client.get_all_routes(inactive_since=now - timedelta(minutes=1))

    assert "/user/alice/" in idle_later
    assert idle_later["/user/alice/"]["data"] == {"user": "alice"}
    assert idle_before == {}


@pytest.mark.parametrize(
    "name",
    ["a b", "ünïcode", "x%2Fy", "a+b@c?d#e", "semi;colon&amp=1"],
)
def test_routespec_with_special_characters(
    chp: ProxyProcess, client: ProxyClient, server_url: str, name: str
) -> None:
    routespec = f"/user/{name}/"

    client.add_route(routespec, server_url, {"user": name})

    route = client.get_route(routespec)
    assert route is not None and route["data"] == {"user": name}
    assert set(client.get_all_routes()) == {"/", routespec}
    response = public_get(chp, quote(routespec) + "tree")
    assert response.status_code == 200
    assert response.text.startswith("server ")

    client.delete_route(routespec)
    assert client.get_route(routespec) is None
    assert set(client.get_all_routes()) == {"/"}


def test_requests_follow_routes(chp: ProxyProcess, client: ProxyClient, server_url: str) -> None:
    assert public_get(chp, "/user/alice/lab").text == "hub /user/alice/lab"

    client.add_route("/user/alice/", server_url, {})
    assert public_get(chp, "/user/alice/lab").text == "server /user/alice/lab"
    assert public_get(chp, "/user/bob/lab").text == "hub /user/bob/lab"

    client.delete_route("/user/alice/")
    assert public_get(chp, "/user/alice/lab").text == "hub /user/alice/lab"


def test_route_to_a_dead_server_gives_503(chp: ProxyProcess, client: ProxyClient) -> None:
    client.add_route("/user/alice/", f"http://127.0.0.1:{free_port()}", {})

    assert public_get(chp, "/user/alice/").status_code == 503


def test_delete_of_a_missing_route_is_fine(client: ProxyClient) -> None:
    client.delete_route("/user/nobody/")

    assert client.get_route("/user/nobody/") is None


def test_wrong_token_raises_at_once(chp: ProxyProcess, caplog) -> None:
    client = ProxyClient(chp.api_url, "wrong-token", retries=3, backoff=5.0)
    try:
        with pytest.raises(ProxyError, match="403") as excinfo:
            client.get_all_routes()
        assert chp.api_url in str(excinfo.value)
        assert "token" in str(excinfo.value)
        # backoff=5 s: a retry would show as a warning (and a slow test).
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert client.ping() is False
    finally:
        client.close()


def test_unreachable_api_raises_after_retries(caplog) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = ProxyClient(url, TOKEN, retries=2, backoff=0.01)

    with caplog.at_level(logging.WARNING, logger="proxy.client"):
        with pytest.raises(ProxyError) as excinfo:
            client.add_route("/user/alice/", "http://127.0.0.1:1", {})

    message = str(excinfo.value)
    assert message.startswith("The proxy is unavailable")
    assert f"{url}/api/routes/user/alice" in message
    assert "refused" in message.lower()
    retries = [r for r in caplog.records if r.name == "proxy.client"]
    assert len(retries) == 2
    assert client.ping() is False
    client.close()


def test_5xx_is_retried() -> None:
    # Not a stand-in for CHP: an HTTP server that fails twice, to drive the retry path.
    calls: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:
            calls.append(self.path)
            self.send_response(503 if len(calls) <= 2 else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    for url in serve(Flaky):
        client = ProxyClient(url, TOKEN, retries=2, backoff=0.01)
        client.delete_route("/user/alice/")
        client.close()

    assert calls == ["/api/routes/user/alice"] * 3


def test_ping(client: ProxyClient) -> None:
    assert client.ping() is True


def test_concurrent_calls_reuse_the_pool(client: ProxyClient, server_url: str, caplog) -> None:
    # requests' default pool of 10 would discard connections ("Connection pool is full").
    errors: list[Exception] = []
    barrier = threading.Barrier(40)

    def add(i: int) -> None:
        try:
            barrier.wait(timeout=5)
            client.add_route(f"/user/u{i}/", server_url, {"user": f"u{i}"})
            for _ in range(5):
                client.get_route(f"/user/u{i}/")
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert len(client.get_all_routes()) == 41
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_new_session_after_fork(client: ProxyClient, monkeypatch) -> None:
    assert client.ping()
    parent_session = client._session

    monkeypatch.setattr("proxy.client.os.getpid", lambda: -1)

    assert client.ping()
    assert client._session is not parent_session
    assert parent_session is not None
    parent_session.close()
