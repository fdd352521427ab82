"""The OAuth 2 authorization-code provider that user servers log browsers in with.

A server's client id is ``jupyterhub-user-<name>``, its secret the server's
API token, its redirect URI ``/user/<name>/oauth_callback``. Only the owner
of a server is given a code for it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, select

from app.auth import current_identity
from app.db import get_db
from app.errors import HubError
from app.models import OAuthClient, OAuthCode, Server, utcnow
from app.servers import access_scopes
from app.tokens import get_tokens, hash_token

bp = Blueprint("oauth", __name__)

CODE_LIFETIME = timedelta(minutes=5)


@bp.get("/oauth2/authorize")
def authorize() -> ResponseReturnValue:
    """Give the logged-in owner of a server a one-time code for it."""
    client_id = request.args.get("client_id", "")
    redirect_uri = request.args.get("redirect_uri", "")
    if request.args.get("response_type", "code") != "code":
        raise HubError(400, "Only response_type=code is supported")
    db = get_db()
    with db.read() as session:
        client = session.get(OAuthClient, client_id)
        server = session.get(Server, client.server_id) if client and client.server_id else None
        owner = server.user.name if server is not None else None
    if client is None or owner is None:
        raise HubError(400, f"Unknown OAuth client {client_id!r}")
    if redirect_uri and redirect_uri != client.redirect_uri:
        raise HubError(400, f"redirect_uri {redirect_uri!r} does not belong to {client_id}")
    identity = current_identity()
    if identity.user is None or not identity.via_cookie:
        return redirect("/hub/login?" + urlencode({"next": request.full_path}))
    if identity.user.name != owner:
        raise HubError(403, f"{identity.user.name} is not allowed to use {owner}'s server.")
    code = secrets.token_urlsafe(24)
    with db.write() as session:
        session.add(
            OAuthCode(
                hashed=hash_token(code),
                client_id=client.id,
                user_id=identity.user.id,
                redirect_uri=client.redirect_uri,
                expires_at=utcnow() + CODE_LIFETIME,
            )
        )
    query = {"code": code}
    if "state" in request.args:
        query["state"] = request.args["state"]
    return redirect(f"{client.redirect_uri}?{urlencode(query)}")


@bp.post("/oauth2/token")
def token() -> ResponseReturnValue:
    """Exchange a code (with the client's secret) for an access token."""
    form = request.form
    client_id, secret = _client_credentials()
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type", "Only authorization_code is supported")
    db = get_db()
    with db.write() as session:
        client = session.get(OAuthClient, client_id)
        if client is None or not hmac.compare_digest(client.secret_hash, hash_token(secret)):
            return _oauth_error("invalid_client", "Unknown client or wrong secret", 401)
        code = session.scalar(
            select(OAuthCode).where(OAuthCode.hashed == hash_token(form.get("code", "")))
        )
        if code is not None:
            # One use only, whatever happens next.
            session.execute(delete(OAuthCode).where(OAuthCode.id == code.id))
        if code is None or code.client_id != client.id or code.expires_at <= utcnow():
            return _oauth_error("invalid_grant", "The code is unknown, used or expired")
        if form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri does not match the code's")
        server = session.get(Server, client.server_id)
        if server is None:
            return _oauth_error("invalid_client", "The client's server no longer exists", 401)
        scopes = [*access_scopes(server.user.name, server.name), "identify"]
        token_value, _row = get_tokens().create(
            code.user_id,
            note=f"OAuth token for {client.id}",
            scopes=scopes,
            server_id=server.id,
            client_id=client.id,
            session=session,
        )
    return jsonify({"access_token": token_value, "token_type": "Bearer", "scope": " ".join(scopes)})


def _client_credentials() -> tuple[str, str]:
    """client_id and client_secret from the form or HTTP Basic auth."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
            return client_id, secret
        except (ValueError, UnicodeDecodeError):
            pass
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


def _oauth_error(error: str, description: str, status: int = 400) -> ResponseReturnValue:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response
