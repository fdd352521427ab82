"""An address as the host part of a URL, for the hub and the proxy alike."""

from __future__ import annotations


def url_host(ip: str) -> str:
    """The host to put in a URL for a listen address: a wildcard bind ("", 0.0.0.0, ::) is
    reached on loopback, and an IPv6 address goes in brackets."""
    if ip in ("", "0.0.0.0"):
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    return f"[{ip}]" if ":" in ip else ip
