"""FlaskHub: a multi-user server hub, after JupyterHub, on Flask and gevent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.version import __version__

if TYPE_CHECKING:
    # Imported in create_app: `flaskhub run`'s gunicorn arbiter imports app.* without Flask.
    from flask import Flask

__all__ = ["__version__", "create_app"]


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the hub: settings, storage, auth, domain services, blueprints."""
    from flask import Flask

    from app import (
        api,
        auth,
        config,
        db,
        errors,
        groups,
        headers,
        logins,
        metrics,
        oauth,
        pages,
        roles,
        servers,
        shares,
        system_accounts,
        tokens,
        users,
    )
    from app.services import registry as services

    app = Flask(__name__, static_folder=None)
    config.init_app(app, overrides)
    db.init_app(app)
    users.init_app(app)
    groups.init_app(app)
    roles.init_app(app)
    shares.init_app(app)
    tokens.init_app(app)
    oauth.init_app(app)  # issues tokens: after tokens
    logins.init_app(app)
    auth.init_app(app)
    metrics.init_app(app)  # the recorder servers.init_app hands to the lifecycle
    servers.init_app(app)
    services.init_app(app)  # its routes join the route check: after servers
    system_accounts.init_app(app)
    headers.init_app(app)
    errors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    return app
