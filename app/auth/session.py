"""Web session: who makes this request (API token header or login cookie), login and
logout, CSRF, and the login cookie itself. Resolves the request's app.identity.Identity,
with the hub's grants passed in."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Request, Response, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from app.auth.state import get_auth_states
from app.grants import get_grants
from app.identities import get_identities
from app.identity import ANONYMOUS, Identity
from app.logs import set_request_user
from app.models import User
from app.tokens import get_tokens
from app.users import get_users

CSRF_HEADERS = ("X-XSRFToken", "X-CSRFToken", "X-CSRF-Token")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


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
    token = token_from_header()
    if token is not None:
        return get_identities().of_token(token)
    users = get_users()
    name = session.get("user")
    if name:
        user = users.get(name)
        if user is not None and hmac.compare_digest(session.get("cookie_id", ""), user.cookie_id):
            users.note_seen(user)
            user = get_auth_states().recheck(user)
            identity = Identity(user=user, via_cookie=True, grants=get_grants())
            return identity if user is not None else ANONYMOUS
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
