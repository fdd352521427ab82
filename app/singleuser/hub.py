"""The hub's REST API as this server uses it: identify tokens, finish OAuth, report activity."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import requests

log = logging.getLogger(__name__)

HUB_TIMEOUT = 10
TOKEN_CACHE_SECONDS = 60
TOKEN_CACHE_SIZE = 1024


class HubCallFailed(Exception):
    """A call to the hub failed; carries the HTTP status to give the visitor (the hub's
    own errors are app.errors.HubError, which takes the same arguments in this order)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenCache:
    """Hub answers per token (positive and negative) for a while, keyed by the token's hash."""

    def __init__(
        self,
        ttl: float = TOKEN_CACHE_SECONDS,
        max_size: int = TOKEN_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()

    def get(self, token: str) -> tuple[bool, dict[str, Any] | None]:
        """Return (found, model); model is None for a token the hub rejected."""
        key = _token_key(token)
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, model = entry
        if expires <= self.clock():
            del self._entries[key]
            return False, None
        return True, model

    def put(self, token: str, model: dict[str, Any] | None) -> None:
        """Remember the hub's answer for a token, evicting the oldest entry when full."""
        key = _token_key(token)
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl, model)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class HubClient:
    """Calls to the hub API with this server's token; one per process."""

    def __init__(
        self,
        api_url: str,
        api_token: str,
        *,
        session: requests.Session | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.session = session or requests.Session()
        self.cache = cache or TokenCache()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        """Return the hub's model of the token's owner, or None if the hub rejects the token."""
        found, model = self.cache.get(token)
        if found:
            return model
        model = self._fetch_identity(token)
        self.cache.put(token, model)
        return model

    def exchange_code(self, code: str, client_id: str, redirect_uri: str) -> str:
        """Trade an OAuth authorization code for an access token."""
        url = f"{self.api_url}/oauth2/token"
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "client_secret": self.api_token,
            "redirect_uri": redirect_uri,
        }
        try:
            response = self.session.post(url, data=form, timeout=HUB_TIMEOUT)
        except requests.RequestException as exc:
            log.error("OAuth token request to %s failed: %s", url, exc)
            raise HubCallFailed(500, f"Failed to reach the hub to complete login: {exc}") from exc
        if response.status_code in (400, 401, 403):
            reason = _error_text(response)
            log.warning("Hub rejected OAuth code (%s): %s", response.status_code, reason)
            raise HubCallFailed(403, f"The hub rejected the login: {reason}")
        token = _json(response).get("access_token") if response.ok else None
        if not isinstance(token, str) or not token:
            log.error("Unexpected OAuth token answer from %s: %s", url, response.status_code)
            raise HubCallFailed(500, f"The hub did not issue a token (HTTP {response.status_code})")
        return token

    def post_activity(self, url: str, server_name: str, last_activity: str) -> bool:
        """Tell the hub when this server was last used; return whether the hub accepted it."""
        body: dict[str, Any] = {
            "servers": {server_name: {"last_activity": last_activity}},
            "last_activity": last_activity,
        }
        try:
            response = self.session.post(
                url, json=body, headers=self._auth_headers(self.api_token), timeout=HUB_TIMEOUT
            )
        except requests.RequestException as exc:
            log.warning("Could not report activity to %s: %s", url, exc)
            return False
        if not response.ok:
            log.warning(
                "Hub refused activity report to %s: %s %s",
                url,
                response.status_code,
                _error_text(response),
            )
            return False
        return True

    def _fetch_identity(self, token: str) -> dict[str, Any] | None:
        url = f"{self.api_url}/user"
        try:
            response = self.session.get(url, headers=self._auth_headers(token), timeout=HUB_TIMEOUT)
        except requests.RequestException as exc:
            log.error("Failed to reach the hub API at %s: %s", url, exc)
            raise HubCallFailed(500, f"Failed to reach the hub API: {exc}") from exc
        if response.status_code in (401, 403, 404):
            return None
        model = _json(response) if response.status_code == 200 else {}
        if not isinstance(model.get("name"), str):
            log.error("Unexpected answer from %s: HTTP %s", url, response.status_code)
            raise HubCallFailed(
                500, f"Unexpected answer from the hub API (HTTP {response.status_code})"
            )
        return model

    @staticmethod
    def _auth_headers(token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_text(response: requests.Response) -> str:
    data = _json(response)
    message = data.get("error_description") or data.get("message") or data.get("error")
    return str(message) if message else f"HTTP {response.status_code}"
