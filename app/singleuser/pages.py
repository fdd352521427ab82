"""HTML templates (inline, so they ship with the code) and the one error response shape."""

from __future__ import annotations

from flask import jsonify, make_response, render_template_string, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from app.singleuser.services import services

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
td.size { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
"""

INDEX_HTML = (
    _HEAD
    + """<body>
<h1>{{ title }}</h1>
<p>This is your FlaskHub server. <a href="{{ hub_home }}">Hub home</a></p>
<h2>Your files</h2>
{% if entries %}
<table>
<thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>
<tbody>
{% for entry in entries %}
<tr><td>{{ entry.display_name }}</td><td class="size">{{ entry.size_text }}</td>
<td>{{ entry.modified_text }}</td></tr>
{% endfor %}
</tbody>
</table>
{% if more %}<p>… and {{ more }} more.</p>{% endif %}
{% else %}
<p>No files yet.</p>
{% endif %}
</body>
</html>
"""
)

ERROR_HTML = (
    _HEAD
    + """<body>
<h1>{{ title }}</h1>
<p>{{ message }}</p>
<p><a href="{{ hub_home }}">Hub home</a></p>
</body>
</html>
"""
)


def wants_html() -> bool:
    """Tell whether the client prefers HTML to JSON (browsers do; `*/*` does not)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def error_response(status: int, message: str) -> Response:
    """Answer an error as a small page for browsers, else as JSON {"status", "message"}."""
    if not wants_html():
        response = jsonify(status=status, message=message)
        response.status_code = status
        return response
    title = f"{status} {HTTP_STATUS_CODES.get(status, 'Error')}"
    hub_home = services().settings.hub_home_url
    page = render_template_string(ERROR_HTML, title=title, message=message, hub_home=hub_home)
    return make_response(page, status)
