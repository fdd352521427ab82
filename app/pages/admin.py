"""/hub/admin: users, their servers and groups, for admins (or the `admin-ui` scope).

The page is a shell; admin.js reads and changes everything through the REST API
(paginated on the server: one page of users per request, whatever their number).
"""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth.session import current_identity
from app.config import current_settings
from app.errors import HubError
from app.pages.login_required import require_login

bp = Blueprint("admin_pages", __name__)

PAGE_SIZE = 50


@bp.get("/hub/admin")
def admin_page() -> str:
    require_login()
    identity = current_identity()
    if not (identity.admin or identity.has_scope("admin-ui")):
        raise HubError(403, "The admin page is for admins.", home_link=True)
    settings = current_settings()
    return render_template(
        "admin.html",
        page_size=PAGE_SIZE,
        # Links to other users' servers only where they would open (admin_access).
        open_servers=identity.has_unfiltered_scope("access:servers"),
        named_servers=settings.allow_named_servers,
    )
