"""authenticator = "oauth2": a plain OAuth 2 provider (GitHub-style) with Authlib.

The endpoints are settings (`oauth_authorize_url`, `oauth_token_url`,
`oauth_userinfo_url`); there is no id token: who the user is comes from the
userinfo endpoint, asked with the access token the code was traded for. The
user's stable id there (`sub`, or GitHub's `id`) binds the name at the first login.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from app.auth.providers.redirect import RedirectAuthenticator
from app.outcomes import Forbidden


class OAuth2Authenticator(RedirectAuthenticator):
    """OAuth 2: identity from the userinfo endpoint."""

    def endpoints(self) -> dict[str, Any]:
        s = self.settings
        return {
            "authorization_endpoint": s.oauth_authorize_url,
            "token_endpoint": s.oauth_token_url,
            "userinfo_endpoint": s.oauth_userinfo_url,
        }

    def claims(self, token: dict[str, Any], pending: dict[str, str]) -> dict[str, Any]:
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise Forbidden("The identity provider sent no access token: the login is refused.")
        return self.userinfo(access_token)

    def subject(self, claims: dict[str, Any]) -> tuple[str, str]:
        """(the provider's origin, its stable id of the user): `oauth_subject_claim`, else
        `sub`, else `id` (GitHub's numeric user id; its `login` can be renamed)."""
        issuer = urlsplit(self.settings.oauth_authorize_url)
        names = (self.settings.oauth_subject_claim,) if self.settings.oauth_subject_claim else ()
        return f"{issuer.scheme}://{issuer.netloc}", self._stable_id(claims, names or ("sub", "id"))
