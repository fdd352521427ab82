"""Web authentication, wired: the configured authenticator, passwords, auth states and
grants of an app, and the login session (app.auth.session) installed on it."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from app.auth.authenticators import Authenticator
from app.auth.passwords import Passwords
from app.auth.providers import authenticator_class
from app.auth.session import HubSessionInterface, csrf_token, current_identity
from app.auth.state import AuthStates
from app.config import get_settings
from app.db import DATABASE_DOWN, get_db
from app.forwarded import TrustedProxies
from app.grants import HubGrants
from app.groups import get_groups
from app.identities import Identities
from app.identity import ANONYMOUS
from app.logins import get_throttle
from app.logs import user_per_request
from app.roles import get_roles
from app.tokens import get_tokens
from app.users import get_users


def get_authenticator(app: Flask | None = None) -> Authenticator:
    return (app or current_app).extensions["flaskhub.authenticator"]


def get_passwords(app: Flask | None = None) -> Passwords:
    """The Passwords of the given or current app."""
    return (app or current_app).extensions["flaskhub.passwords"]


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
    auth_states = AuthStates(get_db(app), settings, authenticator, get_users(app))
    grants = HubGrants(get_db(app), settings, get_roles(app), get_groups(app))
    app.extensions["flaskhub.auth_states"] = auth_states
    app.extensions["flaskhub.grants"] = grants
    app.extensions["flaskhub.identities"] = Identities(
        get_db(app), get_tokens(app), grants, auth_states
    )
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.context_processor
    def _identity() -> dict[str, Any]:
        try:
            return {"identity": current_identity()}
        except DATABASE_DOWN:
            # The error page saying so must not need the database itself.
            return {"identity": ANONYMOUS}
