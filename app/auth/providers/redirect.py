"""Login through a provider's pages (OAuth 2 authorization code flow), with Authlib.

The flow with state and PKCE (S256): `begin()` gives the provider's URL and what
the hub keeps until the callback (in the login cookie); `finish()` checks the
state, trades the code for tokens and asks the subclass who they prove
(`claims()`): the username from `username_claim`, groups from `groups_claim`.
Refusals raise Forbidden, a provider that does not answer Unavailable, a claim
that is no valid username Invalid.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from app.auth.authenticators import Authenticator, AuthResult
from app.config import Settings
from app.outcomes import Forbidden, Invalid, LoginExpired, Unavailable
from app.users import UserService, normalize_username

log = logging.getLogger(__name__)


class RedirectAuthenticator(Authenticator):
    """Login through a provider's pages: begin() → the provider → finish() at the callback."""

    redirects = True

    def __init__(self, settings: Settings, users: UserService) -> None:
        super().__init__(settings, users)
        self.http = requests.Session()
        # Passed on every call: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self.verify: str | bool = settings.oauth_ca_file or True
        self.callback_url = settings.oauth_callback_url or (
            settings.public_url + "/hub/oauth_callback"
        )

    def authenticate(self, name: str, password: str) -> AuthResult | None:
        raise Invalid("This hub logs in through its identity provider: use the sign-in button.")

    def endpoints(self) -> dict[str, Any]:
        """authorization_endpoint, token_endpoint, userinfo_endpoint and the like."""
        raise NotImplementedError

    def _client(self) -> OAuth2Session:
        s = self.settings
        client = OAuth2Session(
            s.oauth_client_id,
            s.oauth_client_secret,
            scope=" ".join(s.oauth_scopes),
            redirect_uri=self.callback_url,
            code_challenge_method="S256",
        )
        return client

    def begin(self) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what to keep for finish()."""
        pending = {
            "state": generate_token(32),
            "nonce": generate_token(32),
            "verifier": generate_token(64),
        }
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.endpoints()["authorization_endpoint"],
                state=pending["state"],
                code_verifier=pending["verifier"],
                **self._authorize_extras(pending),
            )
        return url, pending

    def _authorize_extras(self, pending: dict[str, str]) -> dict[str, str]:
        return {}

    def finish(self, pending: dict[str, str] | None, args: dict[str, str]) -> AuthResult:
        """Who the callback's code proves, or Forbidden/Unavailable/Invalid."""
        if not pending or not hmac.compare_digest(args.get("state", ""), pending.get("state", "")):
            raise Forbidden(
                "This login link is not the one the hub started, or it was already used: "
                "start again from the login page."
            )
        if "error" in args:
            reason = args.get("error_description") or args["error"]
            raise Forbidden(f"The identity provider did not log you in: {reason}")
        if not args.get("code"):
            raise Forbidden("The identity provider sent no code: start again from the login page.")
        token = self._fetch_token(args["code"], pending["verifier"])
        claims = self.claims(token, pending)
        return AuthResult(
            self._username(claims),
            self._groups(claims),
            auth_state=_state(token, claims),
            subject=self.subject(claims),
        )

    def _fetch_token(self, code: str, verifier: str) -> dict[str, Any]:
        try:
            with self._client() as client:
                return dict(
                    client.fetch_token(
                        self.endpoints()["token_endpoint"],
                        code=code,
                        code_verifier=verifier,
                        timeout=self.settings.oauth_timeout,
                        verify=self.verify,
                    )
                )
        except AuthlibBaseError as e:
            log.warning("The provider refused the code: %s", e)
            raise Forbidden(
                f"The identity provider refused the login ({e.error}): start again."
            ) from None
        except requests.RequestException as e:
            raise _unavailable(e) from None

    def claims(self, token: dict[str, Any], pending: dict[str, str]) -> dict[str, Any]:
        """What the provider says of the user (verified)."""
        raise NotImplementedError

    def subject(self, claims: dict[str, Any]) -> tuple[str, str]:
        """The provider's account, (issuer, its stable id of the user), or Forbidden."""
        raise NotImplementedError

    def _stable_id(self, claims: dict[str, Any], names: tuple[str, ...]) -> str:
        """The first of the claims `names` that is there: a non-empty string or number."""
        for name in names:
            value = claims.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
        raise Forbidden(
            f"The identity provider sent no stable id ({' or '.join(names)}) for you, so the "
            "hub cannot tell your account from another of the same name. Tell the hub's "
            "administrators."
        )

    def refresh(self, name: str, auth_state: dict[str, Any]) -> AuthResult | None:
        """New tokens (with the refresh token, if any), then who userinfo says they are."""
        token = dict(auth_state)
        refresh_token = auth_state.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token:
            token.update(self._refreshed_token(refresh_token))
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise LoginExpired("The identity provider gave no token to refresh your login with.")
        old = auth_state.get("claims")
        old = old if isinstance(old, dict) else {}
        info = self.userinfo(access_token, expired_if_refused=True)
        if "sub" in old and info.get("sub", old["sub"]) != old["sub"]:
            raise LoginExpired("The identity provider now names someone else.")
        claims = {**old, **info}
        return AuthResult(
            self._username(claims), self._groups(claims), auth_state=_state(token, claims)
        )

    def _refreshed_token(self, refresh_token: str) -> dict[str, Any]:
        try:
            with self._client() as client:
                return dict(
                    client.refresh_token(
                        self.endpoints()["token_endpoint"],
                        refresh_token=refresh_token,
                        timeout=self.settings.oauth_timeout,
                        verify=self.verify,
                    )
                )
        except AuthlibBaseError as e:
            log.info("The provider refused a refresh token: %s", e)
            raise LoginExpired(
                f"The identity provider no longer accepts your login ({e.error}): log in again."
            ) from None
        except requests.RequestException as e:
            raise _unavailable(e) from None

    def userinfo(self, access_token: str, *, expired_if_refused: bool = False) -> dict[str, Any]:
        """What the userinfo endpoint says; `expired_if_refused`: LoginExpired when it
        refuses the token (else Unavailable, as for a provider that does not answer)."""
        url = self.endpoints().get("userinfo_endpoint")
        if not url:
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        response = self._get(url, refused=expired_if_refused, headers=headers)
        info = response.json()
        if not isinstance(info, dict):
            raise Forbidden("The identity provider's userinfo is not a JSON object.")
        return info

    def _get(self, url: str, *, refused: bool = False, **kwargs: Any) -> requests.Response:
        try:
            response = self.http.get(
                url, timeout=self.settings.oauth_timeout, verify=self.verify, **kwargs
            )
            if refused and response.status_code in (400, 401, 403):
                raise LoginExpired(
                    f"The identity provider no longer accepts your login ({response.status_code})"
                    ": log in again."
                )
            response.raise_for_status()
            return response
        except requests.RequestException as e:
            raise _unavailable(e) from None

    def _username(self, claims: dict[str, Any]) -> str:
        """The username claim, normalised like every name; spaces around it are refused
        too (a person may type them, a provider's claim has no reason to)."""
        value = claims.get(self.settings.username_claim)
        if not isinstance(value, str) or not value:
            raise Forbidden(
                f"The identity provider sent no {self.settings.username_claim!r} for you: "
                "the hub cannot name your account. Tell the hub's administrators."
            )
        if value != value.strip():
            raise Invalid(
                f"Invalid username {value!r} from the identity provider: it has spaces "
                "around it. Tell the hub's administrators."
            )
        return normalize_username(value)

    def _groups(self, claims: dict[str, Any]) -> frozenset[str]:
        value = claims.get(self.settings.groups_claim) or []
        if isinstance(value, str):
            value = [value]
        return frozenset(str(g) for g in value if isinstance(g, str | int))

    def logout_url(self, id_token: str | None, return_to: str) -> str | None:
        """Where to end the provider's session too, or None."""
        return None


def _state(token: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
    """The auth state kept for the user: the provider's tokens and what it said of them."""
    keep = ("access_token", "refresh_token", "id_token", "token_type", "expires_at", "scope")
    return {**{k: token[k] for k in keep if k in token}, "claims": claims}


def _unavailable(e: Exception) -> Unavailable:
    log.error("The identity provider failed: %s", e)
    return Unavailable(
        "The identity provider cannot be reached right now: try again in a moment, and tell "
        "the hub's administrators if it lasts."
    )
