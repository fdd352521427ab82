"""The single-user Flask app: a greeting page with the owner's files and a status API."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, jsonify, render_template_string
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.singleuser import auth
from app.singleuser.config import SingleUserSettings, isoformat_z
from app.singleuser.pages import INDEX_HTML, error_response
from app.singleuser.services import EXTENSION, Services, services

MAX_LISTED_FILES = 1000

bp = Blueprint("singleuser", __name__)
bp.before_request(auth.require_owner)


def create_app(settings: SingleUserSettings) -> Flask:
    """Build the app serving `settings.service_prefix` for `settings.user`."""
    app = Flask(__name__, static_folder=None)
    app.extensions[EXTENSION] = Services.from_settings(settings)
    app.after_request(add_version_header)
    app.register_error_handler(HTTPException, http_error)
    app.register_blueprint(bp, url_prefix=settings.service_prefix.rstrip("/") or None)
    app.add_url_rule(settings.callback_path, "oauth_callback", auth.oauth_callback)
    return app


@dataclass(frozen=True)
class FileEntry:
    """One entry of the working directory."""

    name: str
    is_dir: bool
    size: int | None
    modified: datetime | None

    @property
    def display_name(self) -> str:
        """Return the name, with a trailing slash for directories."""
        return f"{self.name}/" if self.is_dir else self.name

    @property
    def size_text(self) -> str:
        """Return the size for people: 1.2 KB, 3 MB."""
        if self.size is None or self.is_dir:
            return "—"
        if self.size < 1024:
            return f"{self.size} B"
        size = self.size / 1024
        for unit in ("KB", "MB", "GB"):
            if size < 1024:
                return f"{size:.1f} {unit}"
            size /= 1024
        return f"{size:.1f} TB"

    @property
    def modified_text(self) -> str:
        """Return the modification time in UTC, to the minute."""
        return self.modified.strftime("%Y-%m-%d %H:%M UTC") if self.modified else "—"


def list_directory(directory: Path) -> list[FileEntry]:
    """List the visible (not dot-) entries of a directory, sorted by name."""
    entries = []
    with os.scandir(directory) as scan:
        for item in scan:
            if item.name.startswith("."):
                continue
            try:
                stat = item.stat()
                size, modified = stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)
            except OSError:  # a broken symlink, or removed meanwhile
                size, modified = None, None
            entries.append(FileEntry(item.name, item.is_dir(), size, modified))
    return sorted(entries, key=lambda entry: entry.name)


@bp.get("/")
def index() -> str:
    """Greet the owner and list the files of the working directory."""
    settings = services().settings
    entries = list_directory(Path.cwd())
    return render_template_string(
        INDEX_HTML,
        title=f"Hello, {settings.user}",
        entries=entries[:MAX_LISTED_FILES],
        more=max(0, len(entries) - MAX_LISTED_FILES),
        hub_home=settings.hub_home_url,
    )


@bp.get("/api/status")
def status() -> Response:
    """Describe this server as JSON."""
    svc = services()
    return jsonify(
        user=svc.settings.user,
        started=isoformat_z(svc.started),
        pid=os.getpid(),
        files=[entry.name for entry in list_directory(Path.cwd())],
        version=svc.settings.version,
    )


def add_version_header(response: Response) -> Response:
    """Tell the hub which single-user protocol this server speaks; forbid framing."""
    response.headers["X-JupyterHub-Version"] = services().settings.version
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    return response


def http_error(exc: HTTPException) -> HTTPException | Response:
    """Answer HTTP errors in the one error shape, keeping headers such as Allow."""
    if exc.code is None:
        return exc
    response = error_response(exc.code, exc.description or "")
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
