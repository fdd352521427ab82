"""Response headers on every hub response: version, CORS defaults, CSP, operator overrides.

Cross-origin API calls: the origins the operator lists in the configured
`Access-Control-Allow-Origin` header (comma or space separated, `*` for any)
are handed to flask-cors for /hub/api, which answers a request from a listed
origin with that origin and one from any other origin with none.
"""

from __future__ import annotations

import re

from flask import Flask, Response, request
from flask_cors import CORS

from app.config import get_settings

DEFAULT_ALLOW_HEADERS = "accept, content-type, authorization"
ALLOW_ORIGIN = "access-control-allow-origin"
API_PATHS = re.compile(r"/hub/api(/.*)?$")


def init_app(app: Flask) -> None:
    """Add the default and configured headers to every response; CORS for the API."""
    settings = get_settings(app)
    configured = dict(settings.headers)
    configured_lower = {name.lower() for name in configured}

    # Registered before flask-cors's hook, so it runs after it (Flask runs them in
    # reverse): flask-cors adds headers, and these replace, never duplicate, them.
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-JupyterHub-Version"] = settings.api_version
        defaults = {
            "Access-Control-Allow-Headers": DEFAULT_ALLOW_HEADERS,
            "Content-Security-Policy": _default_csp(),
            # A window a user's server opens (window.open, a link) on a hub page loses
            # its handle on it, same origin or not: a server's script must never read
            # a hub page, its XSRF token included (README: Security).
            "Cross-Origin-Opener-Policy": "noopener-allow-popups",
        }
        for name, value in defaults.items():
            if name.lower() not in configured_lower:
                response.headers[name] = value
        for name, value in configured.items():
            if name.lower() == ALLOW_ORIGIN and _cors_request():
                continue  # flask-cors answered it with the origin, or with none
            # Werkzeug's Headers are case-insensitive: this replaces, never duplicates.
            response.headers[name] = value
        return response

    origins = allowed_origins(configured)
    if origins:
        _init_cors(app, origins)


def allowed_origins(configured: dict[str, str]) -> list[str]:
    """The origins of the configured Access-Control-Allow-Origin header (name in any case)."""
    values = [value for name, value in configured.items() if name.lower() == ALLOW_ORIGIN]
    return [origin for value in values for origin in re.split(r"[\s,]+", value) if origin]


def _init_cors(app: Flask, origins: list[str]) -> None:
    if "*" in origins:
        # Any origin, answered with "*": browsers never send credentials to it.
        CORS(app, resources=API_PATHS, origins="*", send_wildcard=True, always_send=False)
        return
    # Literal, case-insensitive matches only: flask-cors would read a string with
    # regex characters as a pattern, and a pattern can match more than the operator
    # meant (with credentials allowed, that would matter).
    patterns = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]
    CORS(
        app,
        resources=API_PATHS,
        origins=patterns,
        supports_credentials=True,
        always_send=False,
    )


def _cors_request() -> bool:
    return "Origin" in request.headers and API_PATHS.match(request.path) is not None


def _default_csp() -> str:
    # No page of the hub may be framed (clickjacking); the `headers` setting may allow it.
    if request.path.startswith("/hub/api"):
        return "frame-ancestors 'none'; default-src 'none'"
    return "frame-ancestors 'none'"
