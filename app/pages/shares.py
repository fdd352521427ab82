"""/hub/accept-share: see what a share code gives, and accept it (JupyterHub 5's page)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue

from app.errors import HubError
from app.outcomes import Invalid
from app.pages.login_required import require_login
from app.shares import filtered, get_shares
from app.urls import safe_next, server_url_for

bp = Blueprint("share_pages", __name__)


@bp.get("/hub/accept-share")
def accept_share_page() -> ResponseReturnValue:
    """What the code shares, from whom, and a button to accept it."""
    user = require_login()
    row = get_shares().find_code(request.args.get("code", ""))
    if row is None:
        raise HubError(404, "Share not found or expired")
    if row.owner_id == user.id:
        raise HubError(403, "You can't share with yourself!")
    server = row.server
    return render_template(
        "accept_share.html",
        user=user,
        code=request.args["code"],
        owner=server.user.name,
        server=server,
        server_url=server_url_for(server.user.name, server.name),
        scopes=filtered(row.scopes, server),
        # Only a `next` the link named: the form's POST goes to the server by default
        # (absolute with per-user origins, which `next` may never be).
        next_url=_next_url(""),
    )


@bp.post("/hub/accept-share")
def accept_share() -> ResponseReturnValue:
    """Exchange the code for a share, then go to the server (or `next`)."""
    user = require_login()
    try:
        share = get_shares().exchange(request.form.get("code", ""), user.id)
    except Invalid as e:
        raise HubError(400, e.message) from None
    server = share.server
    return redirect(_next_url(server_url_for(server.user.name, server.name)))


def _next_url(default: str) -> str:
    """`next` if it is a path on this hub, else the shared server's URL."""
    return safe_next(request.values.get("next", "")) or default
