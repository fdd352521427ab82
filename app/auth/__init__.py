"""Authentication: login sessions, API tokens, CSRF, and who may act for whom."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from flask import Flask, Request, Response, current_app, g, has_app_context, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from app.auth.authenticators import Authenticator
from app.auth.passwords import Passwords
from app.auth.providers import authenticator_class
from app.auth.state import AuthStates
from app.config import current_settings, get_settings
from app.db import DATABASE_DOWN, get_db
from app.forwarded import TrustedProxies
from app.grants import granted_scopes
from app.groups import get_groups
from app.logins import get_throttle
from app.logs import set_request_user, user_per_request
from app.models import APIToken, User
from app.roles import get_roles
from app.scopes import (
    DEFAULT_ROLES,
    IDENTIFY,
    ScopeSet,
    covers,
    expand_scopes,
    identify_scopes,
    intersect,
    role_scopes,
    shown_scopes,
)
from app.tokens import Service, get_tokens
from app.users import get_users

CSRF_HEADERS = ("X-XSRFToken", "X-CSRFToken", "X-CSRF-Token")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


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

    @property
    def authenticated(self) -> bool:
        return self.user is not None or self.service is not None

    @cached_property
    def owner_scopes(self) -> frozenset[str]:
        """Everything the owner may do: the user role (+ admin role) and what others shared
        with them, or a service's own."""
        if self.user is not None:
            held = expand_scopes(_granted_scopes(self.user.id), user=self.user.name)
            found = held | IDENTIFY
            if not self.user.admin:
                return found
            # Other users' servers only with admin_access (JupyterHub's).
            return found | (role_scopes("admin") - _withheld_from_admins())
        if self.service is not None:
            configured = expand_scopes(_service_scopes(self.service.name)) | IDENTIFY
            return (configured | role_scopes("admin")) if self.service.admin else configured
        return frozenset()

    @cached_property
    def token_scopes(self) -> frozenset[str] | None:
        """The token's own limit, or None when it carries all of its owner's rights."""
        if self.full_access:
            return None
        assert self.token is not None
        if self.user is None:
            return expand_scopes(self.token.scopes)
        # Every token may read who its owner is (JupyterHub adds these to each token).
        return expand_scopes(self.token.scopes, user=self.name) | identify_scopes(self.name)

    @cached_property
    def scopes(self) -> frozenset[str]:
        """The expanded scopes this credential carries (the owner's, narrowed by the token)."""
        if self.token_scopes is None:
            return self.owner_scopes
        return intersect(self.token_scopes, self.owner_scopes)

    @property
    def shown_scopes(self) -> list[str]:
        """The scopes as JupyterHub shows them: GET /hub/api/user, the token list."""
        return shown_scopes(self.scopes)

    @cached_property
    def _grants(self) -> tuple[ScopeSet, ...]:
        # Owner and token are checked separately, so a group filter on either
        # side is resolved against the database (intersect() cannot do that).
        groups_of = cache(_group_names)
        grants = [ScopeSet(self.owner_scopes, groups_of)]
        if self.token_scopes is not None:
            grants.append(ScopeSet(self.token_scopes, groups_of))
        return tuple(grants)

    def has_scope(
        self,
        scope: str,
        user: str | None = None,
        server: str | None = None,
        *,
        group: str | None = None,
        service: str | None = None,
    ) -> bool:
        """May this credential use `scope` on that user, server ("user/name"), group or service?

        Without a target: whether it holds the scope for anything at all (the
        caller then filters what it shows).
        """
        if not self.authenticated:
            return False
        if scope in IDENTIFY:
            return True
        if user is None and server is None and group is None and service is None:
            return any(s.partition("!")[0] == scope for s in self.scopes)
        target = {"user": user, "server": server, "group": group, "service": service}
        return all(grant.allows(scope, **target) for grant in self._grants)

    def has_unfiltered_scope(self, scope: str) -> bool:
        """The scope is held for every resource (no filter narrows it)."""
        return self.authenticated and all(grant.unfiltered(scope) for grant in self._grants)

    def missing_scopes(self, wanted: frozenset[str]) -> frozenset[str]:
        """The expanded scopes of `wanted` this credential does not hold."""
        if not self.authenticated:
            return wanted
        return frozenset().union(*(covers(grant, wanted - IDENTIFY) for grant in self._grants))


def _service_scopes(name: str) -> Iterable[str]:
    """The `scopes` a service has in the `services` setting, and those of its roles."""
    if not has_app_context():
        return ()
    for service in current_settings().services:
        if service["name"] == name:
            return (*service.get("scopes", ()), *get_roles().scopes_of_service(name))
    return ()


def _granted_scopes(user_id: int) -> Iterable[str]:
    """The scopes of the roles a user holds and of what was shared with them."""
    return granted_scopes(get_db(), user_id) if has_app_context() else DEFAULT_ROLES["user"]


def _withheld_from_admins() -> frozenset[str]:
    if has_app_context() and current_settings().admin_access:
        return frozenset()
    return frozenset({"access:servers"})


def _group_names(user_name: str) -> frozenset[str]:
    """The groups a user is in (asked only when a !group= filter could grant access)."""
    return get_groups().group_names_of(user_name)


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
        set_request_user(g.identity.name, request.environ)
    return g.identity


def _resolve_identity() -> Identity:
    users = get_users()
    token = token_from_header()
    if token is not None:
        found = get_tokens().lookup(token)
        if isinstance(found, Service):
            return Identity(service=found)
        if found is not None and found.user is not None:
            # Loaded with the token, in the same read.
            user = get_auth_states().recheck(found.user)
            return Identity(user=user, token=found) if user is not None else ANONYMOUS
        return ANONYMOUS
    name = session.get("user")
    if name:
        user = users.get(name)
        if user is not None and hmac.compare_digest(session.get("cookie_id", ""), user.cookie_id):
            users.note_seen(user)
            user = get_auth_states().recheck(user)
            return Identity(user=user, via_cookie=True) if user is not None else ANONYMOUS
    return ANONYMOUS


def login_user(user: User) -> None:
    """Start a login session (a fresh one: no fixation)."""
    session.clear()
    session["user"] = user.name
    session["cookie_id"] = user.cookie_id
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True
    g.pop("identity", None)
    set_request_user(user.name, request.environ)
    get_users().note_seen(user)


def logout_user() -> None:
    """End the login here and wherever its cookie was copied, and the logins to the
    user's servers (a server drops its own cookie within its token cache time)."""
    identity = current_identity()
    if identity.user is not None and identity.via_cookie:
        get_users().end_sessions(identity.user.name)
        get_tokens().revoke_oauth(identity.user.id)
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
    return _carries_csrf(request, session)


def _carries_csrf(req: Request, login: SessionMixin, *, opening: bool = False) -> bool:
    """The request carries the login's CSRF token: in a header or a form field; while
    the session opens also the `_xsrf` query argument (an EventSource can send no
    header), and a body too large to read counts as none (the view answers its 413)."""
    expected = login.get("csrf")
    sent = next((req.headers[h] for h in CSRF_HEADERS if h in req.headers), None)
    if sent is None and req.mimetype in FORM_TYPES:
        try:
            sent = req.form.get("_xsrf")
        except HTTPException:
            if not opening:
                raise
    if sent is None and opening:
        sent = req.args.get("_xsrf")
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


def is_navigation(req: Request) -> bool:
    """A top-level navigation of the browser (a link, a typed URL, a form), as the
    browser itself says (Fetch Metadata, which no script can set)."""
    return (
        req.headers.get("Sec-Fetch-Mode") == "navigate"
        and req.headers.get("Sec-Fetch-Dest") == "document"
        # A service worker's navigation preload: the worker reads the answer.
        and "Service-Worker-Navigation-Preload" not in req.headers
    )


class DetachedSession(SecureCookieSession):
    """The login cookie of a request that may not use it: empty, and never saved (a
    script's request must neither act as the visitor nor replace their cookie)."""


def get_authenticator(app: Flask | None = None) -> Authenticator:
    return (app or current_app).extensions["flaskhub.authenticator"]


def get_passwords(app: Flask | None = None) -> Passwords:
    """The Passwords of the given or current app."""
    return (app or current_app).extensions["flaskhub.passwords"]


def get_auth_states(app: Flask | None = None) -> AuthStates:
    """The AuthStates of the given or current app."""
    return (app or current_app).extensions["flaskhub.auth_states"]


class HubSessionInterface(SecureCookieSessionInterface):
    """The login cookie, Secure also whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Most API requests carry a token and no cookie: nothing to verify, so no
        # signing serializer to build (Flask builds one first, on every request).
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        login = super().open_session(app, request)
        if login is None or is_navigation(request) or _carries_csrf(request, login, opening=True):
            return login
        # Anything else the browser sends with the cookie (fetch, XHR, a frame, an
        # image) may come from a script of a page on this origin, e.g. a user's server
        # in path mode: it gets no login and no CSRF token (README: Security).
        return DetachedSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, DetachedSession):
            super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Create the configured authenticator and expose csrf_token to templates."""
    settings = get_settings(app)
    # The proxy in front of the hub says how the browser reached it; no one else may.
    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    app.wsgi_app = user_per_request(app.wsgi_app)  # type: ignore[method-assign,assignment]
    app.session_interface = HubSessionInterface()
    cls = authenticator_class(settings.authenticator)
    authenticator = cls(settings, get_users(app))
    app.extensions["flaskhub.authenticator"] = authenticator
    app.extensions["flaskhub.passwords"] = Passwords(get_users(app), settings, get_throttle(app))
    app.extensions["flaskhub.auth_states"] = AuthStates(
        get_db(app), settings, authenticator, get_users(app)
    )
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.context_processor
    def _identity() -> dict[str, Any]:
        try:
            return {"identity": current_identity()}
        except DATABASE_DOWN:
            # The error page saying so must not need the database itself.
            return {"identity": ANONYMOUS}
