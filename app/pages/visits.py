"""How the pages present the one decision about a server (``Visit``) to a person."""

from __future__ import annotations

from flask import redirect
from flask.typing import ResponseReturnValue

from app.errors import HubError
from app.servers import Next, Visit
from app.urls import pending_page_url, spawn_page_url

RESTART_HINT = "You can try restarting your server from the home page."


def visit_error(visit: Visit) -> HubError:
    """The error page for a server that cannot be used now: failed, stopped or stopping."""
    spawn_url = spawn_page_url(visit.user_name, visit.server_name)
    if visit.next == Next.SHOW_FAILURE:
        return HubError(
            visit.failure_status or 500,
            f"{visit.message} {RESTART_HINT}",
            title="Spawn failed",
            relaunch=True,
            home_link=True,
            spawn_url=spawn_url,
        )
    if visit.next == Next.WAIT_STOP:
        return HubError(503, visit.message, home_link=True)
    return HubError(
        424, visit.message, title="Server not running", launch=True, spawn_url=spawn_url
    )


def go_or_wait(visit: Visit) -> ResponseReturnValue:
    """To the server if it is ready, to the pending page while it starts or after it
    failed (which shows the failure with Relaunch); else the error page."""
    if visit.next == Next.GO:
        return redirect(visit.url)
    if visit.next in (Next.WAIT, Next.SHOW_FAILURE):
        return redirect(pending_page_url(visit.user_name, visit.server_name))
    raise visit_error(visit)
