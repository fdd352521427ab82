"""Domain: the hub's services, from the `services` setting and created through the API.

Services of the setting are fixed for the life of the hub; those of the API are
rows (`services`), so every worker and replica sees the same ones. A service
with a url is routed at its prefix (the route check keeps the routes); one with
a redirect URI and a token is an OAuth client (`service-<name>`), so it can log
users in through the hub.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import Database, get_db
from app.models import APIToken, OAuthClient, ServiceRow
from app.outcomes import Conflict, Invalid, NotFound, NotModifiable
from app.scopes import ScopeError, check_scopes
from app.servers import get_servers
from app.services.specs import ServiceSpec, SpecError, pid_file, spec_from
from app.tokens import hash_token

log = logging.getLogger(__name__)

# Fields a service created through the API may have (JupyterHub's; no command, no scopes).
API_FIELDS = frozenset(
    {
        "admin",
        "url",
        "api_token",
        "oauth_client_id",
        "oauth_redirect_uri",
        "oauth_client_allowed_scopes",
        "oauth_no_confirm",
        "info",
        "display",
    }
)


class ServiceRegistry:
    """Every service: those of the setting, then those created through the API."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.configured = {s.name: s for s in map(spec_from, settings.services)}

    def all(self) -> list[ServiceSpec]:
        with self.db.read() as session:
            rows = session.scalars(select(ServiceRow).order_by(ServiceRow.id)).all()
            return [*self.configured.values(), *map(_spec_of, rows)]

    def get(self, name: str) -> ServiceSpec | None:
        if name in self.configured:
            return self.configured[name]
        with self.db.read() as session:
            row = session.scalar(select(ServiceRow).where(ServiceRow.name == name))
            return _spec_of(row) if row is not None else None

    def pid(self, spec: ServiceSpec) -> int:
        """The pid of a managed service's process now (0 if none)."""
        try:
            return int(pid_file(self.settings.data_dir, spec.name).read_text())
        except (OSError, ValueError):
            return 0

    def routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The proxy routes of services with a url: {prefix: (target, data)}."""
        return {
            spec.prefix: (spec.url, {"service": spec.name, "jupyterhub": True})
            for spec in self.all()
            if spec.url
        }

    def create(self, name: str, body: Mapping[str, Any]) -> ServiceSpec:
        """A new service from an API body (JupyterHub 5's POST /services/<name>).

        Conflict if the name (or its OAuth client id) is taken; Invalid for a
        managed one (a `command`), an unknown field, a wrong type or an unknown scope.
        """
        if self.get(name) is not None:
            raise Conflict(f"Service {name} already exists")
        spec = _checked_api_spec(name, body)
        try:
            with self.db.write() as session:
                if spec.redirect_uri and session.get(OAuthClient, spec.client_id) is not None:
                    raise Conflict(f"OAuth client {spec.client_id} already exists")
                session.add(_row_of(spec))
                if spec.api_token and spec.redirect_uri:
                    _save_client(session, spec)
        except IntegrityError:
            # Another request created the same name (or token) first.
            raise Conflict(f"Service {name} already exists (or its api_token is taken)") from None
        log.info("Service %s created through the API", name)
        return spec

    def delete(self, name: str) -> ServiceSpec:
        """Remove a service created through the API, its OAuth client and the tokens users
        were given through it. NotModifiable for a service of the setting."""
        if name in self.configured:
            raise NotModifiable(f"Service {name} is not modifiable at runtime")
        with self.db.write() as session:
            row = session.scalar(select(ServiceRow).where(ServiceRow.name == name))
            if row is None:
                raise NotFound(f"Service {name} does not exist")
            spec = _spec_of(row)
            session.delete(row)
            session.execute(delete(APIToken).where(APIToken.client_id == spec.client_id))
            session.execute(delete(OAuthClient).where(OAuthClient.service_name == name))
        log.info("Service %s deleted through the API", name)
        return spec

    def sync_clients(self) -> None:
        """Make the OAuth clients of the setting's services what it says (at start-up):
        add or update each, and drop those of services no longer anywhere."""
        with self.db.write() as session:
            dynamic = set(session.scalars(select(ServiceRow.name)).all())
            for spec in self.configured.values():
                if spec.redirect_uri:
                    _save_client(session, spec)
            for client in session.scalars(
                select(OAuthClient).where(OAuthClient.service_name.is_not(None))
            ).all():
                kept = self.configured.get(client.service_name or "")
                wanted = kept is not None and kept.redirect_uri and kept.client_id == client.id
                if not wanted and client.service_name not in dynamic:
                    session.delete(client)


def _checked_api_spec(name: str, body: Mapping[str, Any]) -> ServiceSpec:
    if not isinstance(body, Mapping) or not body:
        raise Invalid("Invalid service data: a JSON object of the service's fields is required")
    if body.get("command"):
        raise Invalid(f"Can not create managed service {name} at runtime")
    unknown = sorted(set(body) - API_FIELDS - {"name"})
    if unknown:
        raise Invalid(f"Unknown field(s) of a service: {', '.join(unknown)}")
    try:
        spec = spec_from({**body, "name": name}, from_config=False)
        check_scopes(list(spec.oauth_client_allowed_scopes))
    except (SpecError, ScopeError) as e:
        raise Invalid(str(e)) from None
    return spec


def _save_client(session: Session, spec: ServiceSpec) -> None:
    client = session.get(OAuthClient, spec.client_id) or OAuthClient(id=spec.client_id)
    client.secret_hash = hash_token(spec.api_token)
    client.redirect_uri = spec.redirect_uri
    client.description = f"Service {spec.name}"
    client.service_name = spec.name
    client.server_id = None
    session.add(client)


def _row_of(spec: ServiceSpec) -> ServiceRow:
    return ServiceRow(
        name=spec.name,
        admin=spec.admin,
        url=spec.url,
        api_token_hash=hash_token(spec.api_token) if spec.api_token else None,
        oauth_client_id=spec.oauth_client_id or None,
        oauth_redirect_uri=spec.oauth_redirect_uri,
        oauth_client_allowed_scopes=list(spec.oauth_client_allowed_scopes),
        oauth_no_confirm=spec.oauth_no_confirm,
        info=dict(spec.info),
        display=spec.display,
    )


def _spec_of(row: ServiceRow) -> ServiceSpec:
    return ServiceSpec(
        name=row.name,
        admin=row.admin,
        url=row.url,
        oauth_client_id=row.oauth_client_id or "",
        oauth_redirect_uri=row.oauth_redirect_uri,
        oauth_client_allowed_scopes=tuple(row.oauth_client_allowed_scopes),
        oauth_no_confirm=row.oauth_no_confirm,
        info=row.info,
        display=row.display,
        from_config=False,
    )


def init_app(app: Flask) -> None:
    """Create the registry; the route check keeps its services' routes (after servers)."""
    registry = ServiceRegistry(get_db(app), get_settings(app))
    app.extensions["flaskhub.services"] = registry
    get_servers(app).routes.extra_routes = registry.routes


def get_services(app: Flask | None = None) -> ServiceRegistry:
    """The ServiceRegistry of the given or current app."""
    return (app or current_app).extensions["flaskhub.services"]
