"""Who is asking, for the pages: the logged-in user, or off to the login page."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import abort, redirect, request

from app.auth.session import current_identity
from app.models import User


def require_login() -> User:
    """The logged-in user (cookie or full-access token), or a redirect to the login page."""
    identity = current_identity()
    if identity.user is None or not identity.full_access:
        abort(redirect("/hub/login?" + urlencode({"next": request.full_path.rstrip("?")})))
    return identity.user
