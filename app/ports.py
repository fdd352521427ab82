"""Whether `flaskhub run` can listen where its settings say, asked before anything starts.

gunicorn, given an address in use, retries it five times and exits in its own
words; CHP dies with a stack trace. One line naming the setting says more.
"""

from __future__ import annotations

import errno
import socket

from app.config import ENV_PREFIX, Settings

Address = tuple[str, int, str, str]


def listen_addresses(settings: Settings, hub_ips: list[str]) -> list[Address]:
    """(ip, port, the ip's setting, the port's setting) of every TCP address the hub and
    its CHP listen on; the hub's other addresses (where containers reach it) follow from
    the spawner, not from a setting of their own."""
    wanted = [(ip, settings.hub_port, "hub_ip", "hub_port") for ip in hub_ips[:1]]
    wanted += [(ip, settings.hub_port, "", "hub_port") for ip in hub_ips[1:]]
    if settings.proxy_auto_start:
        wanted.append((settings.ip, settings.port, "ip", "port"))
        wanted.append(("127.0.0.1", settings.proxy_api_port, "", "proxy_api_port"))
    return wanted


def unusable(addresses: list[Address]) -> str | None:
    """Why the first address nothing can listen on is unusable, naming its setting; or None."""
    for ip, port, ip_setting, port_setting in addresses:
        shown = f"[{ip}]:{port}" if ":" in ip else f"{ip or '*'}:{port}"
        try:
            _try_bind(ip, port)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (
                    f"Cannot listen on {shown}: the address is in use (by another hub, "
                    f"perhaps). Set {_named(port_setting)} to a free port, or stop what "
                    "listens there."
                )
            if e.errno == errno.EADDRNOTAVAIL and ip_setting:
                return (
                    f"Cannot listen on {shown}: {ip} is no address of this host. Set "
                    f"{_named(ip_setting)} to one."
                )
            return f"Cannot listen on {shown} ({_named(port_setting)}): {e.strerror or e}."
    return None


def _named(setting: str) -> str:
    return f"{setting} ({ENV_PREFIX}{setting.upper()})"


def _try_bind(ip: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As gunicorn and node do: a port whose last connections linger (TIME_WAIT) is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
