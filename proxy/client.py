"""A client for configurable-http-proxy's REST API."""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

# ping() must answer quickly even when CHP is wedged: it is a health check, not an API call.
PING_TIMEOUT = 1.0
# A connection is made within milliseconds or not at all (a lost node drops the SYN):
# waiting the whole request timeout for it would hold every write for nothing.
CONNECT_TIMEOUT = 3.0
# A path no route uses: GET on it costs CHP a dict lookup, where GET /api/routes
# would serialise the whole table.
PING_ROUTE = "/_flaskhub_ping"
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class ProxyError(Exception):
    """CHP was unreachable (after retries) or refused; str() names the API URL and the cause."""


class ProxyClient:
    """Add, list and delete CHP routes over its REST API.

    Routespecs are paths with a trailing slash ("/user/alice/", "/"). Every call
    has a timeout; connection errors, timeouts and 5xx answers are retried with
    exponential backoff, then raise ProxyError. Other unexpected answers (a wrong
    token's 403, a 400) raise ProxyError at once. ping() never raises.
    """

    def __init__(
        self,
        api_url: str,
        auth_token: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        pool_maxsize: int = 100,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pool_maxsize = pool_maxsize
        self.auth_token = auth_token
        self._auth_header = f"token {auth_token}"
        self._session: requests.Session | None = None
        self._session_pid: int | None = None

    def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        """Route requests under routespec to target, storing data with the route."""
        # target last: a "target" key in data must not redirect the route.
        body = {**data, "target": target}
        self._request("POST", _api_path(routespec), expect=(201,), json=body)

    def delete_route(self, routespec: str) -> None:
        """Remove the route for routespec; a route that is already gone is fine."""
        self._request("DELETE", _api_path(routespec), expect=(204, 404))

    def get_all_routes(self, inactive_since: datetime | None = None) -> dict[str, dict[str, Any]]:
        """Return every route by routespec, or only those idle since inactive_since."""
        params = None
        if inactive_since is not None:
            params = {"inactive_since": _format_time(inactive_since)}
        response = self._request("GET", "/api/routes", expect=(200,), params=params)
        return {
            route["routespec"]: route
            for route in (_parse_route(path, stored) for path, stored in response.json().items())
        }

    def get_route(self, routespec: str) -> dict[str, Any] | None:
        """Return the route for routespec, or None when CHP has none."""
        if _chp_path(routespec) == "/":
            # CHP answers GET /api/routes/ with the whole table, not the "/" route.
            return self.get_all_routes().get("/")
        response = self._request("GET", _api_path(routespec), expect=(200, 404))
        if response.status_code == 404:
            return None
        return _parse_route(_chp_path(routespec), response.json())

    def ping(self) -> bool:
        """Return True if CHP's API answers and accepts our token; one short try, never raises."""
        url = self.api_url + _api_path(PING_ROUTE)
        try:
            response = self._get_session().get(url, timeout=min(PING_TIMEOUT, self.timeout))
        except requests.RequestException as e:
            logger.debug("Proxy ping to %s failed: %s", url, e)
            return False
        logger.debug("Proxy ping to %s: HTTP %s", url, response.status_code)
        return response.status_code in (200, 404)

    def close(self) -> None:
        """Close pooled connections; the next call opens new ones."""
        if self._session is not None and self._session_pid == os.getpid():
            self._session.close()
        self._session = self._session_pid = None

    def _get_session(self) -> requests.Session:
        """Return this process's session, creating it after a fork."""
        pid = os.getpid()
        if self._session is None or self._session_pid != pid:
            # A session inherited over fork shares sockets with the parent: never reuse it.
            session = requests.Session()
            # CHP's API is the hub's own: never through a proxy the environment names,
            # which requests would otherwise look up (a scan of os.environ) on every call.
            session.trust_env = False
            # One host (CHP's API), so one pool; sized to the greenlets that call at once.
            # max_retries=0: retrying is _request's job alone.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_maxsize, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["Authorization"] = self._auth_header
            self._session, self._session_pid = session, pid
        return self._session

    def _request(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...],
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Send one API request, retrying unreachable CHP and 5xx; raise ProxyError otherwise."""
        url = self.api_url + path
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "Proxy API %s %s failed (%s); retry %s of %s in %.1f s",
                    method,
                    url,
                    reason,
                    attempt,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
            logger.debug("Proxy API %s %s", method, url)
            try:
                response = self._get_session().request(
                    method,
                    url,
                    params=params,
                    json=json,
                    timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
                )
            except requests.ConnectTimeout:
                reason = f"no connection within {min(CONNECT_TIMEOUT, self.timeout):g} s"
                continue
            except requests.Timeout:
                reason = f"no answer within {self.timeout:g} s"
                continue
            except requests.ConnectionError as e:
                reason = _connection_reason(e)
                continue
            if response.status_code in expect:
                return response
            if response.status_code >= 500:
                reason = f"HTTP {response.status_code}: {_body(response)}"
                continue
            raise ProxyError(_refused_message(method, url, response))
        raise ProxyError(
            "The proxy is unavailable: could not reach configurable-http-proxy's API "
            f"at {url} ({reason})"
        )


def _chp_path(routespec: str) -> str:
    """Return routespec as CHP keys it: a leading slash, no trailing one (except "/")."""
    return "/" + routespec.strip("/")


def _api_path(routespec: str) -> str:
    """Return the quoted API path for routespec: /api/routes/user/alice, or /api/routes/."""
    path = _chp_path(routespec)
    return "/api/routes" + quote(path, safe="/")


def _parse_route(chp_path: str, stored: dict[str, Any]) -> dict[str, Any]:
    """Turn one of CHP's stored routes into our shape, keyed by routespec with a slash."""
    data = {k: v for k, v in stored.items() if k not in ("target", "last_activity")}
    last_activity = stored.get("last_activity")
    return {
        "routespec": chp_path if chp_path == "/" else chp_path + "/",
        "target": stored.get("target"),
        "data": data,
        "last_activity": _parse_time(last_activity) if last_activity else None,
    }


def _parse_time(value: str) -> datetime:
    """Parse CHP's ISO timestamp ("2024-01-01T00:00:00.000Z") as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _format_time(value: datetime) -> str:
    """Format value as CHP writes timestamps; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _connection_reason(error: requests.ConnectionError) -> str:
    """Return the short cause of a connection error ("Connection refused"), not urllib3's essay."""
    match = _ERRNO_RE.search(str(error))
    return match.group(1).strip() if match else str(error)


def _body(response: requests.Response, limit: int = 200) -> str:
    """Return the start of a response body for an error message."""
    text = response.text.strip()
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")


def _refused_message(method: str, url: str, response: requests.Response) -> str:
    """Explain an unexpected answer from CHP, with a hint for the usual causes."""
    message = (
        f"configurable-http-proxy's API at {url} answered {method} with "
        f"HTTP {response.status_code}: {_body(response)}"
    )
    if response.status_code == 403:
        message += (
            " — the hub's proxy token does not match CONFIGPROXY_AUTH_TOKEN "
            "of the running proxy (or another proxy holds that port)"
        )
    return message
