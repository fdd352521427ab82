"""Authentication: login sessions, API tokens, CSRF, and who may act for whom."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request, session

from app.auth.authenticators import AUTHENTICATORS, Authenticator
from app.models import APIToken, User
from app.users import Service, get_users

CSRF_HEADERS = ("X-XSRFToken", "X-CSRFToken", "X-CSRF-Token")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    """Who is making the request, and how they proved it."""

    user: User | None = None
    service: Service | None = None
    token: APIToken | None = None
    via_cookie: bool = False

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.name
        return self.service.name if self.service is not None else ""

    @property
    def admin(self) -> bool:
        owner_admin = bool(
            (self.user is not None and self.user.admin)
            or (self.service is not None and self.service.admin)
        )
        return owner_admin and self.full_access

    @property
    def full_access(self) -> bool:
        """Cookies, services and ordinary tokens carry all of their owner's rights."""
        if self.token is None:
            return True
        return not self.token.scopes or "inherit" in self.token.scopes

    def has_scope(self, scope: str) -> bool:
        """Full access, or a token scope named `scope` (filters after '!' ignored)."""
        if self.user is None and self.service is None:
            return False  # anonymous: no token, but no rights either
        if self.full_access:
            return True
        assert self.token is not None
        return any(s.split("!", 1)[0] == scope for s in self.token.scopes)

    def can_manage(self, user_name: str) -> bool:
        """Admin, or the user themself with a full-access credential."""
        return self.admin or (self.name == user_name and self.user is not None and self.full_access)


ANONYMOUS = Identity()


def token_from_header() -> str | None:
    """The token of `Authorization: token <t>` or `Bearer <t>` (scheme case-insensitive)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def current_identity() -> Identity:
    """The identity of this request, resolved once: token header first, then the cookie."""
    if "identity" not in g:
        g.identity = _resolve_identity()
    return g.identity


def _resolve_identity() -> Identity:
    users = get_users()
    token = token_from_header()
    if token is not None:
        found = users.lookup_token(token)
        if isinstance(found, Service):
            return Identity(service=found)
        if found is not None and found.user is not None:
            user = users.get(found.user.name)
            return Identity(user=user, token=found) if user else ANONYMOUS
        return ANONYMOUS
    name = session.get("user")
    if name:
        user = users.get(name)
        if user is not None and hmac.compare_digest(session.get("cookie_id", ""), user.cookie_id):
            return Identity(user=user, via_cookie=True)
    return ANONYMOUS


def login_user(user: User) -> None:
    """Start a login session (a fresh one: no fixation)."""
    session.clear()
    session["user"] = user.name
    session["cookie_id"] = user.cookie_id
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True
    g.pop("identity", None)


def logout_user() -> None:
    session.clear()
    g.pop("identity", None)


def csrf_token() -> str:
    """The CSRF token of this session (for forms and Jupyter front ends)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def csrf_ok() -> bool:
    """A cookie-authenticated unsafe request must carry the session's CSRF token."""
    if request.method in SAFE_METHODS or token_from_header() is not None:
        return True
    expected = session.get("csrf")
    sent = next((request.headers[h] for h in CSRF_HEADERS if h in request.headers), None)
    if sent is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = request.form.get("_xsrf")
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


def get_authenticator(app: Flask | None = None) -> Authenticator:
    return (app or current_app).extensions["flaskhub.authenticator"]


def init_app(app: Flask) -> None:
    """Create the configured authenticator and expose csrf_token to templates."""
    settings = app.config["FLASKHUB"]
    cls = AUTHENTICATORS[settings.authenticator]
    app.extensions["flaskhub.authenticator"] = cls(settings, get_users(app))
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.context_processor
    def _identity() -> dict[str, Any]:
        return {"identity": current_identity()}
