"""ProxyInstances against two real CHPs: one at 127.0.0.1, one at 127.0.0.2, on the
same API port, as a swarm's global proxy service answers at one port on each task's
address. The name's resolution is the one part played by the test (no DNS server
here gives one name two loopback addresses)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.servers.recorder import Recorder
from app.servers.routes import Routes
from proxy import instances
from proxy.client import ProxyClient, ProxyError
from proxy.instances import ProxyInstances
from proxy.launcher import ProxyProcess
from tests.helpers import free_ports

pytestmark = pytest.mark.process

TOKEN = "test-proxy-token"
ADDRESSES = ["127.0.0.1", "127.0.0.2"]


@pytest.fixture(scope="module")
def chps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ProxyProcess]]:
    """Two CHPs with their APIs at 127.0.0.1:P and 127.0.0.2:P."""
    api_port, *ports = free_ports(3)
    log_dir = tmp_path_factory.mktemp("chps")
    chps = [
        ProxyProcess(
            ip="127.0.0.1",
            port=port,
            api_ip=address,
            api_port=api_port,
            default_target="http://127.0.0.1:9",
            error_target=None,
            auth_token=TOKEN,
            log_file=str(log_dir / f"{address}.log"),
        )
        for address, port in zip(ADDRESSES, ports, strict=True)
    ]
    for chp in chps:
        chp.start()
    yield chps
    for chp in chps:
        chp.stop()


@pytest.fixture
def resolved() -> list[str]:
    """What the proxy's name resolves to; a test changes it as DNS would."""
    return list(ADDRESSES)


@pytest.fixture
def proxies(
    chps: list[ProxyProcess], resolved: list[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProxyInstances]:
    monkeypatch.setattr(instances, "RESOLVE_SECONDS", 0.0)
    url = f"http://proxy-api:{chps[0].api_port}"
    proxies = ProxyInstances(
        [url], TOKEN, every_address=True, resolve=lambda host, port: list(resolved)
    )
    yield proxies
    proxies.close()
    for chp in chps:
        client = ProxyClient(chp.api_url, TOKEN, retries=0)
        for spec in client.get_all_routes():
            if spec != "/":
                client.delete_route(spec)


def _has(chp: ProxyProcess, spec: str) -> bool:
    return ProxyClient(chp.api_url, TOKEN, retries=0).get_route(spec) is not None


def test_a_name_stands_for_an_instance_at_each_address(
    proxies: ProxyInstances, chps: list[ProxyProcess]
) -> None:
    assert [c.api_url for c in proxies.clients()] == [chp.api_url for chp in chps]
    proxies.add_route("/user/ann/", "http://127.0.0.1:1234", {"user": "ann"})
    assert all(_has(chp, "/user/ann/") for chp in chps)
    proxies.delete_route("/user/ann/")
    assert not any(_has(chp, "/user/ann/") for chp in chps)


def test_instances_follow_the_names_resolution(
    proxies: ProxyInstances, chps: list[ProxyProcess], resolved: list[str]
) -> None:
    first = proxies.clients()[0]
    resolved.remove("127.0.0.2")  # its task is gone
    assert proxies.clients() == [first]  # the same client: its connections are kept
    proxies.add_route("/user/ben/", "http://127.0.0.1:1234", {})
    assert _has(chps[0], "/user/ben/") and not _has(chps[1], "/user/ben/")
    resolved.clear()  # no task at all
    with pytest.raises(ProxyError, match="proxy-api:.* resolves to no address"):
        proxies.add_route("/user/ben/", "http://127.0.0.1:1234", {})


def test_ipv6_addresses_are_bracketed() -> None:
    proxies = ProxyInstances(
        ["http://proxy:8001"], TOKEN, every_address=True, resolve=lambda h, p: ["::1", "10.0.0.2"]
    )
    assert [c.api_url for c in proxies.clients()] == ["http://[::1]:8001", "http://10.0.0.2:8001"]


def test_an_instance_down_is_left_out_of_writes_until_it_answers(
    proxies: ProxyInstances,
    chps: list[ProxyProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="proxy.instances")
    down = chps[1]
    down.stop()
    try:
        proxies.add_route("/user/cat/", "http://127.0.0.1:1234", {})  # the other took it
        assert _has(chps[0], "/user/cat/")
        assert f"on the proxy at {down.api_url}" in caplog.text
        caplog.clear()
        proxies.add_route("/user/dan/", "http://127.0.0.1:1234", {})
        assert down.api_url not in caplog.text  # not tried again at once
        assert [c.api_url for c in proxies.writable()] == [chps[0].api_url]
    finally:
        down.start()
    proxies._down_until[down.api_url] = 0.001  # its time is over: pinged, then written to
    assert [c.api_url for c in proxies.writable()] == [chp.api_url for chp in chps]
    assert f"The proxy at {down.api_url} answers again" in caplog.text


def test_a_write_no_instance_takes_raises(
    proxies: ProxyInstances, chps: list[ProxyProcess]
) -> None:
    for chp in chps:
        chp.stop()
    try:
        with pytest.raises(ProxyError, match="could not reach configurable-http-proxy"):
            proxies.add_route("/user/eve/", "http://127.0.0.1:1234", {})
    finally:
        for chp in chps:
            chp.start()


def test_an_instance_a_route_lookup_misses_is_left_out_of_the_next(
    proxies: ProxyInstances, chps: list[ProxyProcess]
) -> None:
    routes = Routes(proxies, Recorder())
    proxies.add_route("/user/fay/", "http://127.0.0.1:1234", {})
    assert not routes.lost("/user/fay/")
    down = chps[1]
    down.stop()
    try:
        assert not routes.lost("/user/fay/")  # the one that answers has it
        # Not asked again at the next tick (its timeouts would hold the reconcile loop).
        assert [c.api_url for c in proxies.writable()] == [chps[0].api_url]
    finally:
        down.start()
