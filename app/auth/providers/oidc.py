"""authenticator = "oidc": log in through an OpenID Connect provider, with Authlib and joserfc.

Endpoints come from the provider's discovery document (fetched again after
DISCOVERY_TTL); the flow is RedirectAuthenticator's, with a nonce. `claims()`
verifies the id token (signature against the provider's JWKS, fetched again
when it names a key the hub has not seen, i.e. after a rotation; iss, aud, exp,
nonce) and adds userinfo when the id token lacks the username or groups claim.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, KeySet

from app.auth.providers.redirect import RedirectAuthenticator
from app.config import Settings
from app.outcomes import Forbidden, Unavailable
from app.users import UserService

log = logging.getLogger(__name__)

# Asymmetric signatures only: never `none`, never HMAC keyed by the client secret.
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
CLOCK_LEEWAY = 60
# Seconds the discovery document is used before it is fetched again (endpoints move rarely;
# keys are fetched again on an unknown kid anyway).
DISCOVERY_TTL = 3600.0


class OIDCAuthenticator(RedirectAuthenticator):
    """OpenID Connect: endpoints from discovery, identity from the verified id token."""

    def __init__(self, settings: Settings, users: UserService) -> None:
        super().__init__(settings, users)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_until = 0.0
        self._keys: KeySet | None = None

    def endpoints(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() > self._metadata_until:
            try:
                self._metadata = self._discover()
            except Unavailable:
                if self._metadata is None:
                    raise
                # The provider is down just now: the endpoints it published still hold.
            self._metadata_until = time.monotonic() + DISCOVERY_TTL
        return self._metadata

    def _discover(self) -> dict[str, Any]:
        url = self.settings.oauth_issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = dict(self._get(url).json())
        if metadata.get("issuer") != self.settings.oauth_issuer.rstrip("/"):
            raise Unavailable(
                f"The identity provider at {url} names another issuer "
                f"({metadata.get('issuer')!r}): check oauth_issuer."
            )
        return metadata

    def _authorize_extras(self, pending: dict[str, str]) -> dict[str, str]:
        return {"nonce": pending["nonce"]}

    def claims(self, token: dict[str, Any], pending: dict[str, str]) -> dict[str, Any]:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Forbidden("The identity provider sent no id token: the login is refused.")
        claims = self.verify_id_token(id_token, pending["nonce"])
        wanted = (self.settings.username_claim, self.settings.groups_claim)
        if any(c not in claims for c in wanted) and token.get("access_token"):
            info = self.userinfo(token["access_token"])
            if info.get("sub") == claims.get("sub"):
                claims = {**info, **claims}
        return claims

    def subject(self, claims: dict[str, Any]) -> tuple[str, str]:
        """(iss, sub) of the verified id token: OpenID Connect's stable id of an account."""
        return str(claims["iss"]), self._stable_id(claims, ("sub",))

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id token's claims, or Forbidden: signature, iss, aud, exp and nonce checked."""
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY,
            iss={"essential": True, "value": self.endpoints()["issuer"]},
            aud={"essential": True, "value": s.oauth_client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            decoded = jwt.decode(id_token, self._key_for, algorithms=ID_TOKEN_ALGORITHMS)
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as e:
            log.warning("Refused an id token: %s", e)
            raise Forbidden(
                f"The identity provider's id token did not check out ({e}): the login is "
                "refused. Start again from the login page."
            ) from None
        return dict(decoded.claims)

    def _key_for(self, guest: GuestProtocol) -> KeySet:
        """The provider's keys, fetched again when the token names one not seen yet."""
        kid = guest.headers().get("kid")
        with self._lock:
            known = self._keys is not None and (
                kid is None or any(k.kid == kid for k in self._keys.keys)
            )
        if not known:
            keys = KeySet.import_key_set(self._get(self.endpoints()["jwks_uri"]).json())
            with self._lock:
                self._keys = keys
        assert self._keys is not None
        return self._keys

    def logout_url(self, id_token: str | None, return_to: str) -> str | None:
        try:
            end = self.endpoints().get("end_session_endpoint")
        except Unavailable:
            end = None  # the hub's own logout goes on; the provider's session stays
        if not end:
            return None
        params = {"client_id": self.settings.oauth_client_id, "post_logout_redirect_uri": return_to}
        if id_token:
            params["id_token_hint"] = id_token
        return str(requests.Request("GET", end, params=params).prepare().url)
