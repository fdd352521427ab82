"""offset/limit query arguments and JupyterHub's pagination envelope.

A client that sends ``Accept: application/jupyterhub-pagination+json`` gets
``{"items": [...], "_pagination": {offset, limit, total, next}}``; others get
the bare list (or dict).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import request

from app.errors import HubError
from app.outcomes import shown

MEDIA_TYPE = "application/jupyterhub-pagination+json"
DEFAULT_LIMIT = 200
MAX_LIMIT = 200
MAX_SQL_INT = 2**63 - 1


def page_args() -> tuple[int, int]:
    """(offset, limit) from the query: non-negative integers, limit at most MAX_LIMIT."""
    offset = int_arg("offset", 0)
    limit = int_arg("limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    return offset, min(limit, MAX_LIMIT)


def wants_envelope() -> bool:
    return MEDIA_TYPE in request.headers.get("Accept", "")


def paginated(items: Any, offset: int, limit: int, total: int) -> Any:
    """items as they are, or in the envelope if the client asked for it."""
    if not wants_envelope():
        return items
    next_offset = offset + limit
    next_page = None
    if next_offset < total:
        query = {**request.args.to_dict(), "offset": next_offset, "limit": limit}
        next_page = {
            "offset": next_offset,
            "limit": limit,
            "url": f"{request.base_url}?{urlencode(query)}",
        }
    return {
        "items": items,
        "_pagination": {"offset": offset, "limit": limit, "total": total, "next": next_page},
    }


def int_arg(name: str, default: int) -> int:
    """A non-negative integer query argument that fits a 64-bit SQL integer, else 400."""
    value = request.args.get(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise HubError(400, f"{name} must be an integer, got {shown(value)}") from None
    if number < 0:
        raise HubError(400, f"{name} must not be negative")
    if number > MAX_SQL_INT:
        raise HubError(400, f"{name} must be at most {MAX_SQL_INT}")
    return number
