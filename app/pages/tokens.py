"""/hub/token: one's API tokens and the applications one authorised (the page; every
action is a call to /hub/api/users/<me>/tokens from token.js)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, render_template

from app.pages.login_required import require_login

bp = Blueprint("token_pages", __name__)

# (seconds, label) of the expiry choices; 0: never.
EXPIRY_CHOICES = [
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "1 week"),
    (30 * 86400, "30 days"),
    (0, "Never"),
]


@bp.get("/hub/token")
def token_page() -> str:
    user = require_login()
    return render_template(
        "token.html",
        user=user,
        api_url=f"/hub/api/users/{quote(user.name, safe='@~')}/tokens",
        expiry_choices=EXPIRY_CHOICES,
    )
