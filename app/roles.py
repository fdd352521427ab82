"""Domain: roles (JupyterHub's), named sets of scopes held by users, groups and services.

The default roles are code (app.scopes.DEFAULT_ROLES): every user holds `user`,
admins hold `admin`. The `load_roles` setting adds roles, stored with who holds
them; its `user` entry may redefine what every user holds. A credential's
scopes are resolved from them at each request, or kept until a change moves
auth_generation (app.identities), so a change takes effect at once, in every
worker. A service's roles change only with `load_roles`, stored by `flaskhub
run` before any worker starts: each process keeps them once read. Plain Python,
no Flask request objects.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.db import Database, get_db
from app.models import Group, Role, User, group_role_map, new_user, service_role_map
from app.models import user_role_map as user_roles
from app.names import normalize_username
from app.outcomes import Invalid
from app.scopes import DEFAULT_ROLES

log = logging.getLogger(__name__)

# Asked at the first request of each service token: built once.
_ROLES_OF_SERVICE = (
    select(Role.scopes)
    .join(service_role_map, service_role_map.c.role_id == Role.id)
    .where(service_role_map.c.service == bindparam("service"))
)


class RoleService:
    """Roles and who holds them, over a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # {service: the scopes of its roles}: asked on every request of a service
        # token, and fixed for this process's life (only load() changes them).
        self._of_service: dict[str, list[str]] = {}

    def load(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Make the stored roles those of `load_roles`, each held by exactly its members.

        Users and groups named are created if new; an `admin` entry's users become
        admins. Returns the names of the users who became admins.
        """
        specs = list(specs)
        self._of_service.clear()
        with self.db.write() as session:
            stored = {role.name: role for role in session.scalars(select(Role))}
            wanted = {s["name"] for s in specs if _stored(s)}
            for name in set(stored) - wanted:
                log.warning("Deleting role %s: it is no longer in load_roles", name)
                session.delete(stored.pop(name))
            session.flush()
            for spec in specs:
                if _stored(spec):
                    role = stored.get(spec["name"]) or _new_role(session, spec["name"])
                    role.description = spec.get("description", "")
                    role.scopes = list(spec.get("scopes", []))
                    if spec["name"] != "user":
                        _set_members(session, role, spec)
            return _admins(session, specs)

    def scopes_of_service(self, service: str) -> list[str]:
        """The scopes (unexpanded) of the roles a service holds."""
        if service not in self._of_service:
            with self.db.connect() as conn:
                found = conn.execute(_ROLES_OF_SERVICE, {"service": service}).scalars()
                self._of_service[service] = [s for scopes in found for s in scopes]
        return list(self._of_service[service])

    def service_roles(self) -> defaultdict[str, list[str]]:
        """{service: the names of its stored roles} ([] for any other)."""
        query = select(service_role_map.c.service, Role.name).join(
            Role, Role.id == service_role_map.c.role_id
        )
        found: defaultdict[str, list[str]] = defaultdict(list)
        with self.db.read() as session:
            for service, name in session.execute(query.order_by(Role.name)):
                found[service].append(name)
        return found

    def scopes_of_roles(self, names: Iterable[str]) -> list[str]:
        """The scopes of the named roles (default or stored); Invalid naming an unknown one."""
        names = list(dict.fromkeys(names))
        with self.db.read() as session:
            query = select(Role.name, Role.scopes).where(Role.name.in_(names))
            stored: dict[str, list[str]] = {name: scopes for name, scopes in session.execute(query)}
        unknown = [n for n in names if n not in stored and n not in DEFAULT_ROLES]
        if unknown:
            raise Invalid(f"Role '{unknown[0]}' does not exist")
        return [s for n in names for s in stored.get(n, DEFAULT_ROLES.get(n, ()))]


def stored_roles(session: Session, names: Iterable[str]) -> list[Role]:
    """The stored roles called names ("user" and "admin" left out: they are not
    given through rows); Invalid naming those that do not exist."""
    wanted = set(names) - {"user", "admin"}
    found = list(session.scalars(select(Role).where(Role.name.in_(wanted), Role.name != "user")))
    missing = sorted(wanted - {r.name for r in found})
    if missing:
        raise Invalid(f"No such role: {', '.join(missing)} (roles come from load_roles)")
    return found


def _stored(spec: Mapping[str, Any]) -> bool:
    """Whether a load_roles entry is a row: custom roles, and a redefined `user` role."""
    return spec["name"] not in DEFAULT_ROLES or (spec["name"] == "user" and "scopes" in spec)


def _new_role(session: Session, name: str) -> Role:
    role = Role(name=name, description="", scopes=[])
    session.add(role)
    log.info("Role %s added", name)
    return role


def _set_members(session: Session, role: Role, spec: Mapping[str, Any]) -> None:
    """Exactly the members load_roles names (a kind left out: none of that kind)."""
    session.flush()
    users = [_user(session, n) for n in spec.get("users", [])]
    session.execute(user_roles.delete().where(user_roles.c.role_id == role.id))
    session.execute(group_role_map.delete().where(group_role_map.c.role_id == role.id))
    session.execute(service_role_map.delete().where(service_role_map.c.role_id == role.id))
    rows = {(u.id, role.id) for u in users}
    if rows:
        session.execute(user_roles.insert(), [{"user_id": u, "role_id": r} for u, r in rows])
    groups = {_group(session, n).id for n in spec.get("groups", [])}
    if groups:
        session.execute(
            group_role_map.insert(), [{"group_id": g, "role_id": role.id} for g in groups]
        )
    services = set(spec.get("services", []))
    if services:
        session.execute(
            service_role_map.insert(), [{"service": s, "role_id": role.id} for s in services]
        )


def _admins(session: Session, specs: list[Mapping[str, Any]]) -> list[str]:
    """Make the users of an `admin` entry admins (the admin role is the admin flag)."""
    names = [n for s in specs if s["name"] == "admin" for n in s.get("users", [])]
    for name in names:
        _user(session, name).admin = True
    return names


def _user(session: Session, name: str) -> User:
    name = normalize_username(name)
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        log.info("Creating user %s named in load_roles", name)
        user = new_user(name, admin=False)
        session.add(user)
        session.flush()
    return user


def _group(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        log.info("Creating group %s named in load_roles", name)
        group = Group(name=name, properties={})
        session.add(group)
        session.flush()
    return group


def init_app(app: Flask) -> None:
    """Create the RoleService."""
    app.extensions["flaskhub.roles"] = RoleService(get_db(app))


def get_roles(app: Flask | None = None) -> RoleService:
    """The RoleService of the given or current app."""
    return (app or current_app).extensions["flaskhub.roles"]
