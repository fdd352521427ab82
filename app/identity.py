"""Domain: who makes a request, how they proved it, and what they may do (their scopes).

An Identity is plain data: a user or a service, the token it came with (if any), and
the Grants its owner's scopes are read from, passed in by whoever resolved it (the
web layer, app.auth.session, from the token or the login cookie).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Protocol

from app.models import APIToken, User
from app.scopes import (
    IDENTIFY,
    ScopeSet,
    covers,
    expand_scopes,
    identify_scopes,
    intersect,
    role_scopes,
    shown_scopes,
)
from app.tokens import Service

# Other users' servers are an admin's only with admin_access (JupyterHub's).
WITHHELD_FROM_ADMINS = frozenset({"access:servers"})


class Grants(Protocol):
    """Where an identity's owner's scopes come from (app.grants.HubGrants)."""

    @property
    def admin_access(self) -> bool:
        """Whether admins may use other users' servers."""
        ...

    def granted_scopes(self, user_id: int) -> Iterable[str]:
        """The scopes of the roles a user holds and of what was shared with them."""
        ...

    def service_scopes(self, name: str) -> Iterable[str]:
        """The scopes a service has in the `services` setting, and those of its roles."""
        ...

    def group_names(self, user_name: str) -> frozenset[str]:
        """The groups a user is in (asked only when a !group= filter could grant access)."""
        ...


@dataclass(frozen=True)
class Identity:
    """Who is making the request, and how they proved it."""

    user: User | None = None
    service: Service | None = None
    token: APIToken | None = None
    via_cookie: bool = False
    # What the owner was granted; any identity but the anonymous one needs it.
    grants: Grants | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.name
        return self.service.name if self.service is not None else ""

    @property
    def admin(self) -> bool:
        owner_admin = bool(
            (self.user is not None and self.user.admin)
            or (self.service is not None and self.service.admin)
        )
        return owner_admin and self.full_access

    @property
    def full_access(self) -> bool:
        """Cookies, services and ordinary tokens carry all of their owner's rights."""
        if self.token is None:
            return True
        return not self.token.scopes or "inherit" in self.token.scopes

    @property
    def authenticated(self) -> bool:
        return self.user is not None or self.service is not None

    @property
    def _source(self) -> Grants:
        if self.grants is None:
            raise TypeError("an Identity of a user or a service needs the grants of its owner")
        return self.grants

    @cached_property
    def owner_scopes(self) -> frozenset[str]:
        """Everything the owner may do: the user role (+ admin role) and what others shared
        with them, or a service's own."""
        if self.user is not None:
            held = expand_scopes(self._source.granted_scopes(self.user.id), user=self.user.name)
            found = held | IDENTIFY
            if not self.user.admin:
                return found
            # Other users' servers only with admin_access (JupyterHub's).
            withheld = frozenset() if self._source.admin_access else WITHHELD_FROM_ADMINS
            return found | (role_scopes("admin") - withheld)
        if self.service is not None:
            configured = expand_scopes(self._source.service_scopes(self.service.name)) | IDENTIFY
            return (configured | role_scopes("admin")) if self.service.admin else configured
        return frozenset()

    @cached_property
    def token_scopes(self) -> frozenset[str] | None:
        """The token's own limit, or None when it carries all of its owner's rights."""
        if self.full_access:
            return None
        assert self.token is not None
        if self.user is None:
            return expand_scopes(self.token.scopes)
        # Every token may read who its owner is (JupyterHub adds these to each token).
        return expand_scopes(self.token.scopes, user=self.name) | identify_scopes(self.name)

    @cached_property
    def scopes(self) -> frozenset[str]:
        """The expanded scopes this credential carries (the owner's, narrowed by the token)."""
        if self.token_scopes is None:
            return self.owner_scopes
        return intersect(self.token_scopes, self.owner_scopes)

    @property
    def shown_scopes(self) -> list[str]:
        """The scopes as JupyterHub shows them: GET /hub/api/user, the token list."""
        return shown_scopes(self.scopes)

    @cached_property
    def _scope_sets(self) -> tuple[ScopeSet, ...]:
        # Owner and token are checked separately, so a group filter on either
        # side is resolved against the database (intersect() cannot do that).
        groups_of = cache(self._source.group_names)
        grants = [ScopeSet(self.owner_scopes, groups_of)]
        if self.token_scopes is not None:
            grants.append(ScopeSet(self.token_scopes, groups_of))
        return tuple(grants)

    def has_scope(
        self,
        scope: str,
        user: str | None = None,
        server: str | None = None,
        *,
        group: str | None = None,
        service: str | None = None,
    ) -> bool:
        """May this credential use `scope` on that user, server ("user/name"), group or service?

        Without a target: whether it holds the scope for anything at all (the
        caller then filters what it shows).
        """
        if not self.authenticated:
            return False
        if scope in IDENTIFY:
            return True
        if user is None and server is None and group is None and service is None:
            return any(s.partition("!")[0] == scope for s in self.scopes)
        target = {"user": user, "server": server, "group": group, "service": service}
        return all(grant.allows(scope, **target) for grant in self._scope_sets)

    def has_unfiltered_scope(self, scope: str) -> bool:
        """The scope is held for every resource (no filter narrows it)."""
        return self.authenticated and all(grant.unfiltered(scope) for grant in self._scope_sets)

    def missing_scopes(self, wanted: frozenset[str]) -> frozenset[str]:
        """The expanded scopes of `wanted` this credential does not hold."""
        if not self.authenticated:
            return wanted
        return frozenset().union(*(covers(grant, wanted - IDENTIFY) for grant in self._scope_sets))


ANONYMOUS = Identity()
