"""FlaskHub's proxy: run configurable-http-proxy and drive its REST API."""

from proxy.client import ProxyClient, ProxyError
from proxy.launcher import ProxyProcess, ProxyStartError

__all__ = ["ProxyClient", "ProxyError", "ProxyProcess", "ProxyStartError"]
