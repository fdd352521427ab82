"""JSON shapes of the REST API (JupyterHub's)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from app.config import current_settings
from app.models import Role, Server, User
from app.urls import server_url_for
from app.user_views import GroupView, ServerView, UserView


def isoformat(dt: datetime | None) -> str | None:
    """ISO 8601 UTC with Z, or None."""
    if dt is None:
        return None
    # isoformat() pads the year to four digits; strftime("%Y") does not for years < 1000.
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def server_model(server: Server | ServerView, *, state: bool = False) -> dict[str, Any]:
    """The server model; with `state`, the spawner's state too (for admin:server_state:
    app.api.visibility takes it out where the caller may not see it)."""
    owner = server.user.name
    prefix = server_url_for(owner, server.name)
    progress = f"/hub/api/users/{owner}/server/progress"
    if server.name:
        progress = f"/hub/api/users/{owner}/servers/{server.name}/progress"
    public = current_settings().public_url
    model = {
        "name": server.name,
        "display_name": server.display_name or server.name,
        "full_name": f"{owner}/{server.name}",
        "ready": server.ready,
        "pending": server.pending,
        "stopped": not server.active,
        "url": prefix,
        "progress_url": progress,
        "full_url": prefix if prefix.startswith("http") else public + prefix,
        "full_progress_url": public + progress,
        "started": isoformat(server.started),
        "last_activity": isoformat(server.last_activity),
        "user_options": server.user_options or {},
    }
    if state:
        model["state"] = server.spawner_state or {}
    return model


def role_names(admin: bool, roles: Iterable[Role | GroupView]) -> list[str]:
    """A user's roles: `user`, `admin` for admins, and those given to them."""
    return sorted({"user", *(["admin"] if admin else []), *(r.name for r in roles)})


def user_model(
    user: User | UserView, *, include_stopped: bool = False, state: bool = False
) -> dict[str, Any]:
    """The user model; its servers are the active ones, or all with `include_stopped`
    (with their spawner's `state` if asked)."""
    default = user.server("")
    active = {
        s.name: server_model(s, state=state) for s in user.servers if s.active or include_stopped
    }
    return {
        "kind": "user",
        "name": user.name,
        "admin": user.admin,
        "groups": [group.name for group in user.groups],
        "roles": role_names(user.admin, user.roles),
        "server": server_url_for(user.name) if default is not None and default.ready else None,
        "pending": default.pending if default is not None else None,
        "created": isoformat(user.created),
        "last_activity": isoformat(user.last_activity),
        "servers": active,
        "user_info": user.user_info,
    }
