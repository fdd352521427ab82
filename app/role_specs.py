"""The `load_roles` entries, checked: what a role may say (names, scopes, members).

Apart from app/roles.py so that checking settings (gunicorn's arbiter does) loads
neither Flask nor the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from app.scopes import DEFAULT_ROLES, ScopeError, check_scopes

ROLE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9\-_~.]{1,253}[a-z0-9]")
ROLE_KEYS: Final = ("name", "description", "scopes", "users", "groups", "services")
MEMBER_KINDS: Final = ("users", "groups", "services")


def check_role_specs(specs: Iterable[object], services: Iterable[str]) -> None:
    """Raise ValueError saying what is wrong with a `load_roles` entry."""
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError('each role needs {"name": ..., "scopes": [...]}')
        name = spec["name"]
        if set(spec) - set(ROLE_KEYS):
            raise ValueError(f"role {name!r}: unknown keys {sorted(set(spec) - set(ROLE_KEYS))}")
        if not ROLE_NAME_RE.fullmatch(name):
            raise ValueError(
                f"invalid role name {name!r}: 3 to 255 lower-case letters, digits and - _ ~ ., "
                "starting with a letter and ending with a letter or digit"
            )
        if name in seen:
            raise ValueError(f"role {name!r} is defined twice")
        seen.add(name)
        _check_role_values(spec, set(services))


def _check_role_values(spec: dict[str, Any], services: set[str]) -> None:
    name = spec["name"]
    for key in ("scopes", *MEMBER_KINDS):
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"role {name!r}: {key!r} must be a list of strings")
    if not isinstance(spec.get("description", ""), str):
        raise ValueError(f"role {name!r}: 'description' must be a string")
    try:
        check_scopes(spec.get("scopes", []))
    except ScopeError as e:
        raise ValueError(f"role {name!r}: {e}") from None
    if name in ("admin", "server", "token") and "scopes" in spec:
        if list(spec["scopes"]) != list(DEFAULT_ROLES[name]):
            raise ValueError(f"the default role {name!r} cannot be redefined; give it members only")
    if name in ("user", "server", "token") and any(kind in spec for kind in MEMBER_KINDS):
        raise ValueError(f"the default role {name!r} is given by the hub, not to members")
    if name == "admin" and ("groups" in spec or "services" in spec):
        raise ValueError(
            "the admin role is given to users only here; a service is an admin with "
            '"admin": true in its entry of the services setting'
        )
    unknown = sorted(set(spec.get("services", [])) - services)
    if unknown:
        raise ValueError(f"role {name!r}: no such service {unknown[0]!r} in 'services'")
