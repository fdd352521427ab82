"""Domain: what a user has been granted, from which app.identity.Identity derives their scopes.

The scopes of the roles they hold (the `user` role, their own roles, their groups'
roles) and what others shared with them or their groups (JupyterHub 5's sharing).
Read at every request of a login cookie, and when a token's Identity is made (a process
keeps it until auth_generation moves: app.identities), so that a role or share taken
away counts at once, in every worker: one prebuilt statement. A share's
scopes get the filter of its server as named now (its owner may have been renamed).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app
from sqlalchemy import BindParameter, CompoundSelect, bindparam, null, or_, select, union_all

from app.config import Settings
from app.db import Database
from app.groups import GroupService
from app.models import Role, Server, Share, User, group_role_map, user_group_map, user_role_map
from app.roles import RoleService
from app.scopes import DEFAULT_ROLES
from app.shares import server_filter, shared_with

_USER_ID: BindParameter[int] = bindparam("user_id")
# (role name, its scopes, NULL, NULL) for each role held; (NULL, scopes, owner, server
# name) for each share.
_GRANTED: CompoundSelect = union_all(
    select(Role.name, Role.scopes, null(), null()).where(
        or_(
            Role.name == "user",
            Role.id.in_(select(user_role_map.c.role_id).where(user_role_map.c.user_id == _USER_ID)),
            Role.id.in_(
                select(group_role_map.c.role_id)
                .join(user_group_map, user_group_map.c.group_id == group_role_map.c.group_id)
                .where(user_group_map.c.user_id == _USER_ID)
            ),
        )
    ),
    select(null(), Share.scopes, User.name, Server.name)
    .join(Server, Server.id == Share.server_id)
    .join(User, User.id == Server.user_id)
    .where(shared_with(_USER_ID)),
)


def granted_scopes(db: Database, user_id: int) -> list[str]:
    """The scopes (unexpanded) of every role a user holds, through groups too, and of
    everything shared with them and their groups."""
    with db.connect() as conn:
        rows = conn.execute(_GRANTED, {"user_id": user_id}).all()
    # A stored `user` role is load_roles redefining what every user holds.
    base = next((row[1] for row in rows if row[0] == "user"), DEFAULT_ROLES["user"])
    granted = [*base]
    for name, scopes, owner, server in rows:
        if owner is not None:  # a share: its server's filter, as named now
            wanted = server_filter(owner, server)
            granted += (f"{s.partition('!')[0]}!{wanted}" for s in scopes)
        elif name != "user":
            granted += scopes
    return granted


class HubGrants:
    """The hub's Grants (app.identity): roles and shares in the database, services' scopes
    in the `services` setting and their roles."""

    def __init__(
        self, db: Database, settings: Settings, roles: RoleService, groups: GroupService
    ) -> None:
        self.db = db
        self.settings = settings
        self.roles = roles
        self.groups = groups

    @property
    def admin_access(self) -> bool:
        """Whether admins may use other users' servers (the `admin_access` setting)."""
        return self.settings.admin_access

    def granted_scopes(self, user_id: int) -> list[str]:
        """The scopes of the roles a user holds and of what was shared with them."""
        return granted_scopes(self.db, user_id)

    def service_scopes(self, name: str) -> Iterable[str]:
        """The `scopes` a service has in the `services` setting, and those of its roles."""
        for service in self.settings.services:
            if service["name"] == name:
                return (*service.get("scopes", ()), *self.roles.scopes_of_service(name))
        return ()

    def group_names(self, user_name: str) -> frozenset[str]:
        """The groups a user is in."""
        return self.groups.group_names_of(user_name)


def get_grants(app: Flask | None = None) -> HubGrants:
    """What the current app's identities read their owners' scopes from."""
    return (app or current_app).extensions["flaskhub.grants"]
