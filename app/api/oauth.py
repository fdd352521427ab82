"""The OAuth 2 endpoints of the provider in app.oauth: /hub/api/oauth2/authorize and /token.

Only the owner of a server, or a user holding access:servers for it (it was shared with
them), is given a code for it; for a service, a user who holds access:services for it
(JupyterHub's: through a role). The token endpoint answers
refusals in OAuth's own shape, {"error", "error_description"} (app.errors).
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request
from flask.typing import ResponseReturnValue

from app.auth.session import current_identity
from app.errors import HubError
from app.identity import Identity
from app.oauth import OAuthError, get_oauth

bp = Blueprint("oauth", __name__)


@bp.get("/oauth2/authorize")
def authorize() -> ResponseReturnValue:
    """Give a logged-in user with access to the client's server or service a one-time code."""
    client_id = request.args.get("client_id", "")
    redirect_uri = request.args.get("redirect_uri", "")
    if request.args.get("response_type", "code") != "code":
        raise HubError(400, "Only response_type=code is supported")
    client, owner = get_oauth().client_owner(client_id)
    if redirect_uri and redirect_uri != client.redirect_uri:
        raise HubError(400, f"redirect_uri {redirect_uri!r} does not belong to {client_id}")
    identity = current_identity()
    if identity.user is None or not identity.via_cookie:
        return redirect("/hub/login?" + urlencode({"next": request.full_path}))
    if owner is not None and not _may_access(identity, *owner):
        raise HubError(403, f"{identity.user.name} is not allowed to use {owner[0]}'s server.")
    service = client.service_name
    if service is not None and not identity.has_scope("access:services", service=service):
        raise HubError(
            403,
            f"{identity.user.name} is not allowed to use the service {service}: "
            f"that needs the scope access:services!service={service} (through a role).",
        )
    query = {"code": get_oauth().issue_code(client, identity.user.id)}
    if "state" in request.args:
        query["state"] = request.args["state"]
    return redirect(f"{client.redirect_uri}?{urlencode(query)}")


@bp.post("/oauth2/token")
def token() -> ResponseReturnValue:
    """Exchange a code (with the client's secret) for an access token."""
    form = request.form
    client_id, secret = _client_credentials()
    if form.get("grant_type") != "authorization_code":
        raise OAuthError("unsupported_grant_type", "Only authorization_code is supported")
    value, scopes = get_oauth().exchange_code(
        client_id, secret, form.get("code", ""), form.get("redirect_uri")
    )
    return jsonify({"access_token": value, "token_type": "Bearer", "scope": " ".join(scopes)})


def _may_access(identity: Identity, owner: str, server_name: str) -> bool:
    """The owner, or a user holding access:servers for it (shared with them; admin_access)."""
    assert identity.user is not None
    server = f"{owner}/{server_name}"
    return identity.user.name == owner or identity.has_scope("access:servers", owner, server)


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
