"""What of a model a caller may see: JupyterHub's field-per-scope tables.

Each read scope shows some fields of a model (``read:users:name`` only the
name); a caller sees the union for the scopes it holds on that resource.
Lists check every item with one ScopeSet over the caller's scopes, and group
filters are answered from the groups the list loaded (no query per item).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from app.groups import get_groups
from app.identity import Identity
from app.models import User
from app.scopes import ScopeSet
from app.user_views import UserView

USER_FIELDS: Final[dict[str, frozenset[str]]] = {
    "read:users": frozenset(
        {
            "kind",
            "name",
            "admin",
            "roles",
            "groups",
            "server",
            "pending",
            "created",
            "last_activity",
            "user_info",
        }
    ),
    "read:users:name": frozenset({"kind", "name", "admin", "user_info"}),
    "read:users:groups": frozenset({"kind", "name", "groups"}),
    "read:users:activity": frozenset({"kind", "name", "last_activity"}),
    "read:servers": frozenset({"kind", "name", "servers"}),
    "read:roles:users": frozenset({"kind", "name", "roles", "admin"}),
}
GROUP_FIELDS: Final[dict[str, frozenset[str]]] = {
    "read:groups": frozenset({"kind", "name", "properties", "users"}),
    "read:groups:name": frozenset({"kind", "name"}),
    "read:roles:groups": frozenset({"kind", "name", "roles"}),
}
SERVER_SCOPES: Final = ("read:servers", "admin:server_state")


class Visibility:
    """Answers "which fields of this user's or group's model may the caller see?"."""

    def __init__(self, identity: Identity, groups_of: Callable[[str], Iterable[str]]) -> None:
        self.scopes = ScopeSet(identity.scopes, groups_of)
        every = (*USER_FIELDS, *GROUP_FIELDS, *SERVER_SCOPES)
        self.sees_all = all(self.scopes.unfiltered(scope) for scope in every)

    def user_fields(self, name: str) -> frozenset[str]:
        """The fields of a user's model the caller may see (empty: none)."""
        return _fields(USER_FIELDS, lambda scope: self.scopes.allows(scope, user=name))

    def group_fields(self, name: str) -> frozenset[str]:
        return _fields(GROUP_FIELDS, lambda scope: self.scopes.allows(scope, group=name))

    def server(self, scope: str, owner: str, name: str) -> bool:
        return self.scopes.allows(scope, server=f"{owner}/{name}")

    def trim_user(self, model: dict[str, Any]) -> dict[str, Any]:
        """The user model with only what the caller may see (servers checked one by one)."""
        if self.sees_all:
            return model
        owner = model["name"]
        fields = self.user_fields(owner)
        trimmed = {k: v for k, v in model.items() if k in fields}
        servers = {
            name: self._trim_server(owner, server)
            for name, server in model.get("servers", {}).items()
            if self.server("read:servers", owner, name)
        }
        if servers or "servers" in trimmed:
            trimmed.update(kind="user", name=owner, servers=servers)
        return trimmed

    def _trim_server(self, owner: str, server: dict[str, Any]) -> dict[str, Any]:
        if "state" in server and not self.server("admin:server_state", owner, server["name"]):
            return {k: v for k, v in server.items() if k != "state"}
        return server

    def strip_state(self, model: dict[str, Any]) -> dict[str, Any]:
        """The user model with `state` only on servers the caller holds admin:server_state on."""
        servers = model.get("servers", {}).items()
        owner = model["name"]
        return {**model, "servers": {n: self._trim_server(owner, s) for n, s in servers}}

    def trim_group(self, model: dict[str, Any]) -> dict[str, Any]:
        if self.sees_all:
            return model
        fields = self.group_fields(model["name"])
        return {k: v for k, v in model.items() if k in fields}


def visibility(identity: Identity, users: Iterable[User | UserView] = ()) -> Visibility:
    """A Visibility for the caller; group filters use the groups of `users` when loaded."""
    loaded = {user.name: [g.name for g in user.groups] for user in users}

    def groups_of(name: str) -> Iterable[str]:
        if name in loaded:
            return loaded[name]
        return get_groups().group_names_of(name)

    return Visibility(identity, groups_of)


def _fields(table: dict[str, frozenset[str]], holds: Callable[[str], bool]) -> frozenset[str]:
    return frozenset().union(*(fields for scope, fields in table.items() if holds(scope)))
