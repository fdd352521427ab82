"""Owner-only access: tokens and the login cookie are checked with the hub; OAuth login."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from flask import g, redirect, request
from itsdangerous import BadData
from werkzeug.wrappers import Response

from app.singleuser.hub import HubCallFailed
from app.singleuser.pages import error_response, wants_html
from app.singleuser.services import Services, services

log = logging.getLogger(__name__)

STATE_COOKIE_SECONDS = 600
TOKEN_SCHEMES = ("token", "bearer")


def require_owner() -> Response | None:
    """Let the owner through; send browsers without a login to the hub; refuse the rest."""
    svc = services()
    header_token = token_from_header()
    token = header_token or token_from_cookie(svc)
    if token is None:
        return login_or_refuse(svc)
    try:
        model = svc.hub.user_for_token(token)
    except HubCallFailed as exc:
        return error_response(exc.status, exc.message)
    if model is None and header_token is None:
        # An expired or revoked login: log in again rather than show an error.
        response = login_or_refuse(svc)
        response.delete_cookie(svc.login_cookie, path=svc.settings.service_prefix)
        return response
    refusal = owner_refusal(model, svc.settings.user, svc.settings.access_scopes)
    if refusal:
        return error_response(403, refusal)
    svc.tracker.touch()
    g.hub_user = model
    return None


def oauth_callback() -> Response:
    """Finish the hub's OAuth login: check state, trade the code, set the login cookie."""
    svc = services()
    pending = load_pending_login(svc)
    state = request.args.get("state", "")
    if pending is None or not state or not hmac.compare_digest(state, pending["state"]):
        message = "OAuth state mismatch: the login expired or began elsewhere. Please reload."
        return error_response(400, message)
    response = finish_login(svc, pending["next"])
    response.delete_cookie(svc.state_cookie, path=svc.settings.service_prefix)
    return response


def finish_login(svc: Services, next_url: str) -> Response:
    """Trade the callback's code for a token and log the owner in."""
    settings = svc.settings
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        return error_response(403, f"Login failed: {reason}")
    code = request.args.get("code")
    if not code:
        return error_response(400, "OAuth callback without a code")
    try:
        token = svc.hub.exchange_code(code, settings.client_id, settings.oauth_callback_url)
        model = svc.hub.user_for_token(token)
    except HubCallFailed as exc:
        return error_response(exc.status, exc.message)
    refusal = owner_refusal(model, settings.user, settings.access_scopes)
    if refusal:
        log.warning("Refused login: %s", refusal)
        return error_response(403, refusal)
    svc.tracker.touch()
    response = redirect(safe_next(next_url, settings.service_prefix), 302)
    set_cookie(response, svc.login_cookie, svc.login_signer.dumps(token))
    return response


def owner_refusal(
    model: dict[str, Any] | None, owner: str, access_scopes: tuple[str, ...]
) -> str | None:
    """Return why the hub's model may not use the owner's server, or None if it may.

    A user's credential must carry the access scope of this server, as JupyterHub's
    HubAuth checks: the owner's (a token limited to reading its name may not use
    it), or another user's the server was shared with (or who may open every server).
    """
    if model is None:
        return "Invalid or expired token"
    name = str(model.get("name"))
    if model.get("kind", "user") != "user":
        return f"{name} is not allowed to use {owner}'s server"
    held = set(model.get("scopes") or ())
    if "access:servers" in held or held.intersection(access_scopes):
        return None
    if name != owner:
        return f"{name} is not allowed to use {owner}'s server"
    return f"This token of {name} does not grant access to the server (no access:servers)"


def token_from_header() -> str | None:
    """Return the token of an `Authorization: token|Bearer <t>` header."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() in TOKEN_SCHEMES and token else None


def token_from_cookie(svc: Services) -> str | None:
    """Return the OAuth token in the signed login cookie, if it is there and intact."""
    value = request.cookies.get(svc.login_cookie)
    if not value:
        return None
    try:
        token = svc.login_signer.loads(value)
    except BadData:
        return None
    return token if isinstance(token, str) and token else None


def login_or_refuse(svc: Services) -> Response:
    """Redirect a browser's GET to the hub's login; refuse anything else with 403."""
    if request.method != "GET" or not wants_html():
        return error_response(403, "Authentication required: send a token or log in via the hub")
    settings = svc.settings
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": settings.client_id,
            "redirect_uri": settings.oauth_callback_url,
            "response_type": "code",
            "state": state,
        }
    )
    response = redirect(f"{settings.authorize_url}?{query}", 302)
    pending = {"state": state, "next": requested_url()}
    set_cookie(
        response, svc.state_cookie, svc.state_signer.dumps(pending), max_age=STATE_COOKIE_SECONDS
    )
    return response


def load_pending_login(svc: Services) -> dict[str, str] | None:
    """Return the state and next URL saved when the login began, if still valid."""
    value = request.cookies.get(svc.state_cookie)
    if not value:
        return None
    try:
        pending = svc.state_signer.loads(value, max_age=STATE_COOKIE_SECONDS)
    except BadData:
        return None
    if not isinstance(pending, dict):
        return None
    state, next_url = pending.get("state"), pending.get("next")
    if not isinstance(state, str) or not isinstance(next_url, str):
        return None
    return {"state": state, "next": next_url}


def safe_next(target: str, prefix: str) -> str:
    """Return `target` if it is a plain path within `prefix`, else `prefix`."""
    if not target or "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return prefix
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return prefix
    # Browsers resolve dot segments (also %2e%2e) before following a redirect.
    segments = unquote(parts.path).split("/")
    if not parts.path.startswith(prefix) or any(seg in (".", "..") for seg in segments):
        return prefix
    return target


def requested_url() -> str:
    """Return the path and query of the current request."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """Set a cookie only this server's pages get: HttpOnly, SameSite=Lax, Path=prefix."""
    forwarded_proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=services().settings.service_prefix,
        secure=request.is_secure or forwarded_proto.lower() == "https",
        httponly=True,
        samesite="Lax",
    )
