"""Domain: the OAuth 2 authorization-code provider that user servers and services log
browsers in with.

A server's client id is ``jupyterhub-user-<name>[~<server>]``, its secret the server's
API token, its redirect URI ``/user/<name>/oauth_callback``; a service's is
``service-<name>`` (or its `oauth_client_id`), its secret the service's token, its
redirect URI ``/services/<name>/oauth_callback`` (or its `oauth_redirect_uri`). A
code is single-use, valid for CODE_LIFETIME, and exchanged for a token that grants
access to that one server or service. Plain Python, no Flask request objects.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import cast

from flask import Flask, current_app
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from app.db import Database, get_db, rows_changed
from app.models import OAuthClient, OAuthCode, Server, utcnow
from app.outcomes import DomainError, Invalid
from app.scopes import access_scopes
from app.tokens import TokenService, get_tokens, hash_token

CODE_LIFETIME = timedelta(minutes=5)
# A server's client: updated where it exists (kept from an earlier start), else added.
_CLIENTS = cast(Table, OAuthClient.__table__)
_CLIENT_FIELDS = ("secret_hash", "redirect_uri", "description", "server_id")
_UPDATE_CLIENT = (
    update(_CLIENTS)
    .where(_CLIENTS.c.id == bindparam("client"))
    .values({name: bindparam(f"new_{name}") for name in _CLIENT_FIELDS})
)
_ADD_CLIENT = insert(_CLIENTS)


class OAuthError(DomainError):
    """A refused token request; `error` is its OAuth 2 error code (RFC 6749 5.2), as data."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


class OAuthService:
    """OAuth clients (one per server), codes and the tokens they are exchanged for."""

    def __init__(self, db: Database, tokens: TokenService) -> None:
        self.db = db
        self.tokens = tokens

    def register_client(
        self,
        session: Session,
        *,
        client_id: str,
        secret_hash: str,
        redirect_uri: str,
        description: str,
        server_id: int,
    ) -> None:
        """Create or update a server's client, in the caller's transaction (at spawn): an
        UPDATE, which a server started before finds (its client is kept at stop), else an
        INSERT."""
        values = {
            "secret_hash": secret_hash,
            "redirect_uri": redirect_uri,
            "description": description,
            "server_id": server_id,
        }
        changed = session.execute(
            _UPDATE_CLIENT, {"client": client_id, **{f"new_{k}": v for k, v in values.items()}}
        )
        if rows_changed(changed) == 0:
            session.execute(_ADD_CLIENT, {"id": client_id, **values})

    def client_owner(self, client_id: str) -> tuple[OAuthClient, tuple[str, str] | None]:
        """A client and the (user, server name) whose server it is (None for a service's);
        Invalid if unknown."""
        with self.db.read() as session:
            client = session.get(OAuthClient, client_id)
            if client is not None and client.service_name is not None:
                return client, None
            server = _server_of(session, client)
            if client is None or server is None:
                raise Invalid(f"Unknown OAuth client {client_id!r}")
            return client, (server.user.name, server.name)

    def issue_code(self, client: OAuthClient, user_id: int) -> str:
        """A new one-time code for a user to give the client."""
        code = secrets.token_urlsafe(24)
        with self.db.write() as session:
            session.add(
                OAuthCode(
                    hashed=hash_token(code),
                    client_id=client.id,
                    user_id=user_id,
                    redirect_uri=client.redirect_uri,
                    expires_at=utcnow() + CODE_LIFETIME,
                )
            )
        return code

    def exchange_code(
        self, client_id: str, secret: str, code: str, redirect_uri: str | None = None
    ) -> tuple[str, list[str]]:
        """An access token and its scopes for a code; OAuthError (invalid_client,
        invalid_grant) if the client, its secret, the code or the redirect URI is wrong."""
        with self.db.write() as session:
            client = _authenticated(session, client_id, secret)
            # Taken in a transaction of its own: one use only, whatever happens next.
            grant = session.scalar(select(OAuthCode).where(OAuthCode.hashed == hash_token(code)))
            if grant is not None:
                session.execute(delete(OAuthCode).where(OAuthCode.id == grant.id))
        if grant is None or grant.client_id != client.id or grant.expires_at <= utcnow():
            raise OAuthError("invalid_grant", "The code is unknown, used or expired")
        if redirect_uri is not None and redirect_uri != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the code's")
        return self._issue_token(client, grant.user_id)

    def _issue_token(self, client: OAuthClient, user_id: int) -> tuple[str, list[str]]:
        with self.db.write() as session:
            server = _server_of(session, client)
            if client.service_name is not None:
                # JupyterHub's required scopes of a service's client: access to it, identify.
                scopes = [f"access:services!service={client.service_name}", "identify"]
            elif server is None:
                raise OAuthError("invalid_client", "The client's server no longer exists")
            else:
                scopes = [*_access_scopes(server), "identify"]
            token, _hashed = self.tokens.add(
                session,
                user_id,
                note=f"OAuth token for {client.id}",
                scopes=scopes,
                server_id=server.id if server is not None else None,
                client_id=client.id,
            )
        return token, scopes


def _authenticated(session: Session, client_id: str, secret: str) -> OAuthClient:
    client = session.get(OAuthClient, client_id)
    if client is None or not hmac.compare_digest(client.secret_hash, hash_token(secret)):
        raise OAuthError("invalid_client", "Unknown client or wrong secret")
    return client


def _server_of(session: Session, client: OAuthClient | None) -> Server | None:
    if client is None or client.server_id is None:
        return None
    return session.get(Server, client.server_id)


def _access_scopes(server: Server) -> list[str]:
    return access_scopes(server.user.name, server.name)


def init_app(app: Flask) -> None:
    """Create the OAuthService (after the TokenService it issues tokens with)."""
    app.extensions["flaskhub.oauth"] = OAuthService(get_db(app), get_tokens(app))


def get_oauth(app: Flask | None = None) -> OAuthService:
    """The OAuthService of the given or current app."""
    return (app or current_app).extensions["flaskhub.oauth"]
