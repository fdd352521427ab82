"""Response headers on every hub response: version, CORS defaults, CSP, operator overrides."""

from __future__ import annotations

from flask import Flask, Response, request

DEFAULT_ALLOW_HEADERS = "accept, content-type, authorization"


def init_app(app: Flask) -> None:
    """Add the default and configured headers to every response."""
    settings = app.config["FLASKHUB"]
    configured = dict(settings.headers)
    configured_lower = {name.lower() for name in configured}

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-JupyterHub-Version"] = settings.api_version
        defaults = {
            "Access-Control-Allow-Headers": DEFAULT_ALLOW_HEADERS,
            "Content-Security-Policy": _default_csp(),
        }
        for name, value in defaults.items():
            if name.lower() not in configured_lower:
                response.headers[name] = value
        for name, value in configured.items():
            # Werkzeug's Headers are case-insensitive: this replaces, never duplicates.
            response.headers[name] = value
        return response


def _default_csp() -> str:
    if request.path.startswith("/hub/api"):
        return "frame-ancestors 'self'; default-src 'none'"
    return "frame-ancestors 'self'"
