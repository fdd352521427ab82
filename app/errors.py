"""The web layer's one mapping of domain outcomes to HTTP, and the one error shape:
JSON {"status", "message"} under /hub/api, an HTML page elsewhere."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Flask, Response, current_app, jsonify, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from app.db import DATABASE_DOWN, UNREACHABLE, DatabaseUnavailable
from app.oauth import OAuthError
from app.outcomes import DomainError, LoginExpired, Outcome, Result

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/hub/api/oauth2/authorize"

STATUS: dict[Outcome, int] = {
    Outcome.READY: 201,
    Outcome.PENDING: 202,
    Outcome.ALREADY_PENDING: 202,
    Outcome.STOPPING: 202,
    Outcome.STOPPED: 204,
    Outcome.PENDING_STOP: 400,
    Outcome.ALREADY_RUNNING: 400,
    Outcome.THROTTLED: 429,
    Outcome.TOO_MANY_USERS: 429,
    Outcome.FAILED: 500,
    Outcome.NOT_FOUND: 404,
    Outcome.CONFLICT: 409,
    Outcome.INVALID: 400,
    Outcome.FORBIDDEN: 403,
    Outcome.UNAVAILABLE: 503,
    Outcome.LOGIN_EXPIRED: 403,
    Outcome.NOT_MODIFIABLE: 405,  # JupyterHub's answer to deleting a service of the settings
}

DATABASE_DOWN_RETRY_AFTER = "5"

# A refused OAuth token request: 400, or 401 for a client that failed to authenticate
# (RFC 6749 5.2).
OAUTH_ERROR_STATUS = {"invalid_client": 401}


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


def status_of(result: Result) -> int:
    """The HTTP status of a result: a failed spawn's own status if it named one."""
    if result.outcome == Outcome.FAILED and result.failure_status:
        return result.failure_status
    return STATUS[result.outcome]


def headers_of(result: Result) -> dict[str, str]:
    """Retry-After for the limits."""
    return {"Retry-After": str(result.retry_after)} if result.retry_after is not None else {}


def result_error(result: Result, **extra: object) -> HubError:
    """A result that is an error, as one to raise (pages add a link or a button)."""
    return HubError(status_of(result), result.message, headers=headers_of(result), **extra)


def result_response(result: Result) -> Response:
    """The API's answer to a start or stop: an empty 2xx, or the error shape."""
    status = status_of(result)
    if status >= 400:
        raise result_error(result)
    return Response(status=status)


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

    @app.errorhandler(DomainError)
    def _domain_error(e: DomainError) -> ResponseReturnValue:
        if isinstance(e, LoginExpired) and not request.path.startswith("/hub/api"):
            # A browser: log in again (through the provider), then come back here.
            log.info("Login of %s expired: %s", session.get("user"), e.message)
            session.clear()
            return redirect("/hub/login?" + urlencode({"next": request.full_path.rstrip("?")}))
        wait = getattr(e, "retry_after", None)
        return error_response(
            STATUS[e.outcome], e.message, {"Retry-After": str(wait)} if wait is not None else None
        )

    def _database_down(e: Exception) -> Response:
        # The driver's message names hosts and ports: the log gets it, the visitor not.
        cause = getattr(e, "orig", None) or e.__cause__ or e
        log.error("Database unavailable on %s %s: %s", request.method, request.path, cause)
        message = str(e) if isinstance(e, DatabaseUnavailable) else UNREACHABLE
        return error_response(503, message, {"Retry-After": DATABASE_DOWN_RETRY_AFTER})

    for kind in DATABASE_DOWN:
        app.register_error_handler(kind, _database_down)

    @app.errorhandler(OAuthError)
    def _oauth_error(e: OAuthError) -> Response:
        # OAuth's own error shape, not the API's.
        response = jsonify({"error": e.error, "error_description": e.message})
        response.status_code = OAUTH_ERROR_STATUS.get(e.error, 400)
        return response

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
        if isinstance(e, RequestEntityTooLarge):
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = f"The request body is larger than the hub accepts ({limit} bytes)."
            return error_response(413, message, headers)
        return error_response(e.code or 500, e.description or e.name, headers)
