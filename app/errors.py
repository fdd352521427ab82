"""One error shape: JSON {"status", "message"} under /hub/api, an HTML page elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from app.servers import ServerError
from app.users import UserError

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/hub/api/oauth2/authorize"


class HubError(Exception):
    """An error to show: status, message, optional HTML extras (a link, a button)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: object
) -> Response:
    """JSON for API paths, the error page otherwise."""
    # The OAuth authorize step is a page a browser visits, not an API call.
    if request.path.startswith("/hub/api") and not request.path.startswith(AUTHORIZE_PATH):
        response = jsonify({"status": status, "message": message})
    else:
        html = render_template("error.html", status=status, message=message, **extra)
        response = Response(html, mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Register the handlers that turn errors into the one shape."""

    @app.errorhandler(HubError)
    def _hub_error(e: HubError) -> Response:
        return error_response(e.status, e.message, e.headers, **e.extra)

    @app.errorhandler(ServerError)
    def _server_error(e: ServerError) -> Response:
        return error_response(e.status, e.message, e.headers)

    @app.errorhandler(UserError)
    def _user_error(e: UserError) -> Response:
        return error_response(e.status, str(e))

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        if isinstance(e, InternalServerError):
            log.error(
                "Unhandled error on %s %s",
                request.method,
                request.path,
                exc_info=e.original_exception,
            )
        headers = {k: v for k, v in e.get_headers() if k.lower() in ("location", "allow")}
        return error_response(e.code or 500, e.description or e.name, headers)
