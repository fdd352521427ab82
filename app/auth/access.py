"""Domain: who may log in and who is an admin, the same for every authenticator.

Order: `blocked_users` refuse; `allow_all` admits; otherwise a name in
`admin_users` or `allowed_users`, or a group in `allowed_groups` or
`admin_groups`, admits. With none of the allow settings, the `dummy` and
`password` authenticators admit whoever they accept (a provider's hub refuses to
start so: app.config.checks). Admin comes from `admin_users` and, when the
authenticator knows the user's groups and `admin_groups` is set, from those
groups, re-read at every login: leaving the group takes admin away.

A name from an identity provider is bound to the provider's account (issuer,
sub) at its first login through it; a login of that name by another account is
refused (`flaskhub user unbind NAME` releases it).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from app.auth.authenticators import AuthResult
from app.config import Settings
from app.models import User
from app.names import normalize_username
from app.outcomes import Forbidden
from app.users import bind_provider, get_or_add

log = logging.getLogger(__name__)


def _names(values: list[str]) -> set[str]:
    """A list of names of the settings, in the names' normal form (checked at start-up:
    app.config.checks)."""
    return {normalize_username(v) for v in values}


def allowed(settings: Settings, result: AuthResult) -> bool:
    """May this authenticated person log in?"""
    if result.name in _names(settings.blocked_users):
        return False
    if settings.allow_all:
        return True
    if result.name in _names(settings.allowed_users) | _names(settings.admin_users):
        return True
    if (result.groups or frozenset()) & {*settings.allowed_groups, *settings.admin_groups}:
        return True
    # No list of who may: dummy and password admit whoever they accept (a provider's
    # hub cannot start like this).
    return not (settings.allowed_users or settings.allowed_groups)


def is_admin(settings: Settings, result: AuthResult) -> bool | None:
    """True or False when the settings decide it; None to leave the user's flag as it is."""
    if result.name in _names(settings.admin_users):
        return True
    if settings.admin_groups and result.groups is not None:
        return bool(result.groups & set(settings.admin_groups))
    return None


def admit(session: Session, settings: Settings, result: AuthResult) -> User:
    """The user to log in (created if new, bound to the provider's account, profile and
    admin flag brought up to date) in the caller's write transaction, or Forbidden."""
    if not allowed(settings, result):
        log.warning("Refused login of %s: not allowed by the hub's settings", result.name)
        raise Forbidden(
            f"You are signed in as {result.name}, but {result.name} may not use this hub. "
            "Ask its administrators to allow you (allowed_users or allowed_groups)."
        )
    user = get_or_add(session, result.name)
    if result.subject is not None:
        try:
            bind_provider(session, user.name, *result.subject)
        except Forbidden:
            log.warning(
                "Refused login of %s: the name is bound to another account of the provider "
                "(this one: issuer %s, sub %s)",
                user.name,
                *result.subject,
            )
            raise
    if result.user_info is not None and result.user_info != user.user_info:
        user.user_info = result.user_info
    admin = is_admin(settings, result)
    if admin is not None and admin != user.admin:
        change = "Granted" if admin else "Removed"
        log.info("%s admin rights of %s (admin_users, admin_groups)", change, user.name)
        user.admin = admin
    return user
