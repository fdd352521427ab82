"""app.services: the registry over the setting and the services table, its OAuth clients."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.config import load
from app.db import Database
from app.models import APIToken, OAuthClient
from app.outcomes import Conflict, Invalid, NotFound, NotModifiable
from app.services.registry import ServiceRegistry
from app.tokens import TokenService, hash_token
from app.users import UserService

CONFIGURED = [
    {"name": "whoami", "api_token": "whoami-token", "url": "http://127.0.0.1:10101"},
    {"name": "culler", "api_token": "culler-token"},
]


@pytest.fixture
def registry(db: Database) -> ServiceRegistry:
    return ServiceRegistry(db, load(environ={}, overrides={"services": CONFIGURED}))


def clients(db: Database) -> dict[str, tuple[str, str | None]]:
    with db.read() as session:
        rows = session.scalars(select(OAuthClient)).all()
        return {c.id: (c.redirect_uri, c.service_name) for c in rows}


def test_sync_clients_makes_the_settings_clients_and_drops_stale_ones(
    db: Database, registry: ServiceRegistry
) -> None:
    with db.write() as session:
        session.add(
            OAuthClient(id="service-gone", secret_hash="x", redirect_uri="/", service_name="gone")
        )
    registry.create("dyn", {"url": "http://127.0.0.1:9", "api_token": "dyn-token"})
    registry.sync_clients()
    assert clients(db) == {
        "service-whoami": ("/services/whoami/oauth_callback", "whoami"),
        "service-dyn": ("/services/dyn/oauth_callback", "dyn"),
    }
    with db.read() as session:
        secret = session.get(OAuthClient, "service-whoami").secret_hash  # type: ignore[union-attr]
    assert secret == hash_token("whoami-token")


def test_create_and_delete(db: Database, registry: ServiceRegistry) -> None:
    spec = registry.create("dyn", {"url": "http://127.0.0.1:9/", "api_token": "dyn-token"})
    assert (spec.url, spec.prefix, spec.from_config) == (
        "http://127.0.0.1:9",
        "/services/dyn/",
        False,
    )
    assert [s.name for s in registry.all()] == ["whoami", "culler", "dyn"]
    assert registry.routes()["/services/dyn/"] == (
        "http://127.0.0.1:9",
        {"service": "dyn", "jupyterhub": True},
    )
    assert "/services/culler/" not in registry.routes()
    assert TokenService(db).lookup("dyn-token").name == "dyn"  # type: ignore[union-attr]
    # A user's token from logging in through the service goes with it.
    user = UserService(db).get_or_create("alice")
    TokenService(db).create(user.id, client_id="service-dyn", scopes=["identify"])
    with pytest.raises(Conflict):
        registry.create("dyn", {"url": "http://x"})
    with pytest.raises(Conflict):
        registry.create("whoami", {"url": "http://x"})
    with pytest.raises(NotModifiable):
        registry.delete("whoami")
    registry.delete("dyn")
    assert registry.get("dyn") is None
    assert TokenService(db).lookup("dyn-token") is None
    assert "service-dyn" not in clients(db)
    with db.read() as session:
        assert (
            session.scalars(select(APIToken).where(APIToken.client_id == "service-dyn")).all() == []
        )
    with pytest.raises(NotFound):
        registry.delete("dyn")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "Invalid service data"),
        ({"command": ["x"]}, "Can not create managed service"),
        ({"scopes": ["read:users"]}, "Unknown field(s) of a service: scopes"),
        ({"display": "yes"}, "'display' of service 'x' must be a bool"),
        ({"oauth_client_allowed_scopes": ["nope"]}, "Scope 'nope' does not exist"),
    ],
)
def test_bad_bodies(registry: ServiceRegistry, body: dict, says: str) -> None:
    with pytest.raises(Invalid, match=f"^{re.escape(says)}"):
        registry.create("x", body)
