"""JupyterHub's scopes: what a credential may do, and to which users, servers and groups.

A scope is a name (``read:users``) optionally narrowed by one filter
(``read:users!user=alice``, ``servers!server=alice/lab``, ``groups!group=team``,
``read:services!service=culler``). A scope implies its subscopes
(``admin:users`` ⊃ ``users`` ⊃ ``read:users`` ⊃ ``read:users:name``), and a
filter carries over to them. ``!user=NAME`` also covers that user's servers,
``!group=NAME`` every member of the group and their servers.

Metascopes: ``self`` is a user's own resources (the "user" role); ``inherit``
on a token means "everything the owner may do". A token can never do more
than its owner: a check must pass both the owner's and the token's scopes.

Plain Python; group membership, which needs the database, is asked of a
callback only when a ``!group=`` filter is what could grant access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

# A scope and the scopes it implies directly: JupyterHub 6.1's whole vocabulary.
SUBSCOPES: Final[Mapping[str, tuple[str, ...]]] = {
    "(no_scope)": (),
    "identify": (),
    "self": (),
    "inherit": (),
    "admin-ui": (),
    "admin:users": ("admin:auth_state", "users", "read:roles:users", "delete:users"),
    "admin:auth_state": (),
    "users": ("read:users", "list:users", "users:activity"),
    "delete:users": (),
    "list:users": ("read:users:name",),
    "read:users": ("read:users:name", "read:users:groups", "read:users:activity"),
    "read:users:name": (),
    "read:users:groups": (),
    "read:users:activity": (),
    "read:roles": ("read:roles:users", "read:roles:services", "read:roles:groups"),
    "read:roles:users": (),
    "read:roles:services": (),
    "read:roles:groups": (),
    "users:activity": ("read:users:activity",),
    "admin:servers": ("admin:server_state", "servers"),
    "admin:server_state": (),
    "servers": ("read:servers", "start:servers", "delete:servers"),
    "read:servers": ("read:users:name",),
    "start:servers": (),
    "delete:servers": (),
    "tokens": ("read:tokens",),
    "read:tokens": (),
    "admin:groups": ("groups", "read:roles:groups", "delete:groups"),
    "groups": ("read:groups", "list:groups"),
    "list:groups": ("read:groups:name",),
    "read:groups": ("read:groups:name",),
    "read:groups:name": (),
    "delete:groups": (),
    "admin:services": ("list:services", "read:services", "read:roles:services"),
    "list:services": ("read:services:name",),
    "read:services": ("read:services:name",),
    "read:services:name": (),
    "read:hub": (),
    "access:servers": (),
    "access:services": (),
    "users:shares": ("read:users:shares",),
    "read:users:shares": (),
    "groups:shares": ("read:groups:shares",),
    "read:groups:shares": (),
    "read:shares": (),
    "shares": ("access:servers", "read:shares", "users:shares", "groups:shares"),
    "proxy": (),
    "shutdown": (),
    "read:metrics": (),
}
FILTER_KINDS: Final = ("user", "server", "group", "service")

# What `self` means for a user: their own model, servers, tokens, shares and activity.
SELF_SCOPES: Final = (
    "read:users",
    "users:shares",
    "read:shares",
    "users:activity",
    "servers",
    "tokens",
    "access:servers",
)
DEFAULT_ROLES: Final[Mapping[str, tuple[str, ...]]] = {
    "user": ("self",),
    "admin": (
        "admin-ui",
        "admin:users",
        "admin:servers",
        "admin:services",
        "tokens",
        "admin:groups",
        "list:services",
        "read:services",
        "read:hub",
        "proxy",
        "shutdown",
        "access:services",
        "access:servers",
        "read:roles",
        "read:metrics",
        "shares",
    ),
    "server": ("users:activity!user", "access:servers!server"),
    "token": ("inherit",),
}
DEFAULT_ROLE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "user": "Standard user privileges",
    "admin": "Elevated privileges (can do anything)",
    "server": "Post activity only",
    "token": "Token with same permissions as its owner",
}
ROLES = DEFAULT_ROLES
# Every credential may ask who it belongs to (GET /hub/api/user).
IDENTIFY: Final = frozenset({"identify", "(no_scope)"})


class ScopeError(ValueError):
    """A scope that does not exist, or a filter that makes no sense."""


def check_scopes(scopes: Iterable[str]) -> None:
    """Raise ScopeError naming the unknown scopes, or the first malformed filter."""
    scopes = list(scopes)
    unknown = [s for s in scopes if s.partition("!")[0] not in SUBSCOPES]
    if len(unknown) == 1:
        raise ScopeError(f"Scope '{unknown[0]}' does not exist")
    if unknown:
        raise ScopeError("Scopes " + ", ".join(f"'{s}'" for s in unknown) + " do not exist")
    for scope in scopes:
        base, _, filter_ = scope.partition("!")
        kind, eq, value = filter_.partition("=")
        if filter_ and (kind not in FILTER_KINDS or (eq and not value)):
            raise ScopeError(f"Scope filter '!{filter_}' in scope '{scope}' does not exist")


def expand_scopes(
    scopes: Iterable[str], *, user: str | None = None, server: str | None = None
) -> frozenset[str]:
    """Scopes with their subscopes, `self` resolved and bare `!user`/`!server` filled in.

    `user` names the owner (a user) for `self` and `!user`; `server` ("user/name")
    fills a bare `!server`. A bare filter without its owner grants nothing.
    `inherit` is left out: it is the caller's business (see Identity.full_access).
    """
    return _expand(tuple(scopes), user, server)


# Every request expands its credential's scopes, and those repeat (the roles of a
# service, of a user): a pure function of its arguments, so remembered. An entry is
# a few KiB (a user's own scopes name them): the most recent 128 are kept.
@lru_cache(maxsize=128)
def _expand(scopes: tuple[str, ...], user: str | None, server: str | None) -> frozenset[str]:
    expanded: set[str] = set()
    for scope in scopes:
        if scope == "self":
            if user is not None:
                expanded |= expand_scopes([f"{s}!user={user}" for s in SELF_SCOPES])
            continue
        if scope == "inherit":
            continue
        base, _, filter_ = scope.partition("!")
        if filter_ == "user":
            filter_ = f"user={user}" if user is not None else ""
        elif filter_ == "server":
            filter_ = f"server={server}" if server is not None else ""
        if scope.partition("!")[1] and not filter_:
            continue
        for name in _with_subscopes(base):
            # A server filter does not carry over to user-wide subscopes
            # (read:servers!server=a/b grants no read:users:name of a).
            if filter_.startswith("server=") and name.startswith("read:users"):
                continue
            expanded.add(f"{name}!{filter_}" if filter_ else name)
    return frozenset(expanded)


def _with_subscopes(base: str) -> set[str]:
    found = {base}
    for sub in SUBSCOPES.get(base, ()):
        found |= _with_subscopes(sub)
    return found


def role_scopes(role: str, *, user: str | None = None) -> frozenset[str]:
    """The expanded scopes of a default role, for a user owner if given."""
    if role not in DEFAULT_ROLES:
        raise ScopeError(f"Role '{role}' does not exist")
    return expand_scopes(DEFAULT_ROLES[role], user=user)


ALL: Final = "*"
"""Parsed form of an unfiltered scope: access to every resource."""

Filters = dict[str, frozenset[str]]


def parse_scopes(expanded: Iterable[str]) -> Mapping[str, str | Filters]:
    """{base: ALL} for unfiltered scopes, {base: {kind: names}} for filtered ones
    (shared between callers: read it, never change it)."""
    return _parse(frozenset(expanded))


@lru_cache(maxsize=128)
def _parse(expanded: frozenset[str]) -> Mapping[str, str | Filters]:
    parsed: dict[str, str | Filters] = {}
    for scope in expanded:
        base, _, filter_ = scope.partition("!")
        current = parsed.get(base)
        if not filter_:
            parsed[base] = ALL
            continue
        if current == ALL:
            continue
        kind, _, value = filter_.partition("=")
        filters = dict(current) if isinstance(current, dict) else {}
        filters[kind] = filters.get(kind, frozenset()) | {value}
        parsed[base] = filters
    return parsed


GroupLookup = Callable[[str], Iterable[str]]


@dataclass
class ScopeSet:
    """Expanded scopes, parsed once, answering "may I do X to Y?"."""

    scopes: frozenset[str]
    groups_of: GroupLookup | None = None
    parsed: Mapping[str, str | Filters] = field(init=False)

    def __post_init__(self) -> None:
        self.parsed = parse_scopes(self.scopes)

    def unfiltered(self, scope: str) -> bool:
        """The scope is held for every resource."""
        return self.parsed.get(scope) == ALL

    def allows(
        self,
        scope: str,
        *,
        user: str | None = None,
        server: str | None = None,
        group: str | None = None,
        service: str | None = None,
    ) -> bool:
        """The scope is held for that user, server ("user/name"), group or service."""
        filters = self.parsed.get(scope)
        if filters is None:
            return False
        if filters == ALL:
            return True
        assert isinstance(filters, dict)
        if group is not None:
            return group in filters.get("group", ())
        if service is not None:
            return service in filters.get("service", ())
        if server is not None:
            if server in filters.get("server", ()):
                return True
            user = server.partition("/")[0]
        if user is None:
            return False
        if user in filters.get("user", ()):
            return True
        wanted_groups = filters.get("group")
        if wanted_groups and self.groups_of is not None:
            return not wanted_groups.isdisjoint(self.groups_of(user))
        return False


def intersect(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    """Expanded scopes granted by both a and b (for showing a token's effective scopes).

    Resolves user ⊃ server filters; group filters survive only where both
    sides agree or one side is unfiltered (membership is not looked up here).
    """
    pa, pb = parse_scopes(a), parse_scopes(b)
    common: set[str] = set()
    for base in pa.keys() & pb.keys():
        fa, fb = pa[base], pb[base]
        if fa == ALL and fb == ALL:
            common.add(base)
            continue
        if fa == ALL or fb == ALL:
            filters = fb if fa == ALL else fa
            assert isinstance(filters, dict)
            common |= _unparse(base, filters)
            continue
        assert isinstance(fa, dict) and isinstance(fb, dict)
        for kind in fa.keys() & fb.keys():
            common |= {f"{base}!{kind}={v}" for v in fa[kind] & fb[kind]}
        for x, y in ((fa, fb), (fb, fa)):
            owners = y.get("user", frozenset())
            common |= {
                f"{base}!server={s}" for s in x.get("server", ()) if s.partition("/")[0] in owners
            }
    return frozenset(common)


def _unparse(base: str, filters: Filters) -> set[str]:
    return {f"{base}!{kind}={value}" for kind, values in filters.items() for value in values}


def access_scopes(user_name: str, server_name: str = "") -> list[str]:
    """The scopes that grant access to a server (any one of them suffices)."""
    return [f"access:servers!server={user_name}/{server_name}", f"access:servers!user={user_name}"]


def identify_scopes(user: str) -> frozenset[str]:
    """What every token of a user may read of its owner (JupyterHub's identify scopes)."""
    return frozenset(f"read:users:{field}!user={user}" for field in ("name", "groups"))


def shown_scopes(expanded: frozenset[str]) -> list[str]:
    """Expanded scopes as JupyterHub 6.1 shows them (a token's `scopes`, GET /user's):
    without the internal names, and without a filtered copy of a scope also held unfiltered
    (an admin's `servers!user=admin` is in `servers`)."""
    unfiltered = {scope for scope in expanded if "!" not in scope}
    return sorted(
        scope
        for scope in expanded - IDENTIFY
        if "!" not in scope or scope.partition("!")[0] not in unfiltered
    )


def covers(have: ScopeSet, wanted: frozenset[str]) -> frozenset[str]:
    """The scopes of `wanted` (expanded) that `have` does not grant."""
    missing = set()
    for scope in wanted:
        base, _, filter_ = scope.partition("!")
        kind, _, value = filter_.partition("=")
        if not filter_:
            ok = have.unfiltered(base)
        else:
            ok = kind in FILTER_KINDS and have.allows(base, **{kind: value})
        if not ok:
            missing.add(scope)
    return frozenset(missing)
