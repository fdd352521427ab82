"""HTML pages: login, home, spawn, spawn-pending, the /hub/user/ redirects, errors."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn, cast
from urllib.parse import quote, unquote, urljoin

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from app.auth import get_authenticator, get_passwords
from app.auth.access import allowed
from app.auth.authenticators import AuthResult
from app.auth.session import csrf_ok, current_identity, login_user, logout_user
from app.auth.state import get_auth_states
from app.config import current_settings
from app.errors import STATUS, HubError, error_response
from app.logins import get_throttle, login_keys
from app.models import ServerState, User
from app.outcomes import DomainError, Invalid, TooManyFailures
from app.pages import admin, servers, shares, tokens
from app.pages.login_required import require_login
from app.pages.user_redirect import handle
from app.urls import pending_page_url, safe_next, server_url_for, to_hub_origin
from app.users import get_users
from proxy.client import ProxyError

if TYPE_CHECKING:
    # Not at run time: Authlib is loaded only by hubs that log in at a provider.
    from app.auth.providers.redirect import RedirectAuthenticator

log = logging.getLogger(__name__)

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/hub/static",
)
bp.register_blueprint(servers.bp)
bp.register_blueprint(tokens.bp)
bp.register_blueprint(admin.bp)
bp.register_blueprint(shares.bp)


def landing_url(user: User) -> str:
    """Where a user (loaded with their servers) goes after logging in, and from /hub/
    (JupyterHub's default URL).

    With `redirect_to_server` (the default): their server if it is starting or running,
    else /hub/spawn to start it; a failed one shows its failure (spawn-pending), never a
    new spawn nobody asked for. Without: the home page.
    """
    if not current_settings().redirect_to_server:
        return "/hub/home"
    # Loaded with the user (a login's, a cookie's): no need to read it again.
    server = user.server("")
    if server is None or server.state == ServerState.STOPPED:
        return "/hub/spawn"
    if server.state == ServerState.FAILED:
        return pending_page_url(user.name)
    return server_url_for(user.name)


bp.before_app_request(to_hub_origin)


@bp.before_request
def _csrf() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok():
        raise HubError(
            403, "The form is out of date (XSRF check failed): reload the page and try again."
        )


@bp.get("/")
def root() -> ResponseReturnValue:
    # The login cookie is the hub's (path /hub/): only /hub/ knows who is asking.
    return redirect("/hub/")


@bp.get("/hub/")
def index() -> ResponseReturnValue:
    """A logged-in user's landing_url; anyone else logs in first (and lands there)."""
    user = current_identity().user
    if user is None or not current_identity().via_cookie:
        return redirect("/hub/login")
    return redirect(landing_url(user))


@bp.get("/hub/user-redirect/", defaults={"path": ""})
@bp.get("/hub/user-redirect/<path:path>")
def user_redirect_to_me(path: str) -> ResponseReturnValue:
    """/hub/user-redirect/<path> → /user/<me>/<path> (nbgitpuller's links), after login."""
    user = require_login()
    # Re-quoted as it came; no "." or ".." step can lead out of the user's prefix.
    steps = [step for step in path.split("/") if step not in (".", "..")]
    query = request.query_string.decode()
    target = quote("/".join(steps), safe="/@!$&'()*+,;=:~")
    return redirect(f"{server_url_for(user.name)}{target}{'?' + query if query else ''}")


@bp.get("/hub/health")
def health() -> ResponseReturnValue:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/hub/favicon.ico")
def favicon() -> ResponseReturnValue:
    """The icon a browser asks for where a page names none (a server's own page, say:
    /favicon.ico reaches the hub through the proxy's default route): the hub's."""
    return redirect("/hub/static/favicon.svg")


@bp.route("/hub/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        user = current_identity().user
        if user is not None and current_identity().via_cookie:
            return redirect(next_url or landing_url(user))
        return _login_page(next_url)
    name = request.form.get("username", "")
    keys = login_keys(name, request.remote_addr)
    # The name's failures are forgotten with the login (the address's stay).
    return finish_login(_authenticate(name, keys, next_url), next_url, forget=keys[0])


def _login_page(next_url: str, error: str | None = None, username: str = "") -> str:
    """The login form, or the provider's sign-in button on a hub that logs in through one."""
    provider = get_authenticator().redirects
    return render_template(
        "login.html", next=next_url, error=error, username=username, provider=provider
    )


def finish_login(
    result: AuthResult, next_url: str, forget: str | None = None
) -> ResponseReturnValue:
    """Log in whom the authenticator vouches for, if the settings allow them (else 403)."""
    user = get_auth_states().log_in(result, forget)
    login_user(user)
    log.info("User %s logged in", user.name)
    return redirect(next_url or landing_url(user))


def _authenticate(name: str, keys: list[str], next_url: str) -> AuthResult:
    """Who the form proves, or the form again with why not (403, or 429 after too
    many failures for the name or from the address, whether the name exists or not)."""
    throttle = get_throttle()
    try:
        throttle.check(keys)
    except TooManyFailures as e:
        html = _login_page(next_url, e.message, name)
        abort(Response(html, status=429, headers={"Retry-After": str(e.retry_after)}))
    result: AuthResult | None
    error = "Invalid username or password."
    try:
        result = get_authenticator().authenticate(name, request.form.get("password", ""))
    except Invalid as e:
        result, error = None, str(e)
    if result is not None and not allowed(current_settings(), result):
        # The right password of someone the hub refuses answers as a wrong one (and counts
        # as one): else the form would tell anyone whose passwords are right.
        log.warning("Refused login of %s: not allowed by the hub's settings", result.name)
        result = None
    if result is None:
        throttle.failed(keys)
        abort(Response(_login_page(next_url, error, name), status=403))
    return result


@bp.get("/hub/oauth_login")
def oauth_login() -> ResponseReturnValue:
    """Off to the identity provider, keeping state, nonce and PKCE verifier for the callback."""
    url, pending = _redirect_authenticator().begin()
    session["oauth_pending"] = {**pending, "next": safe_next(request.args.get("next"))}
    return redirect(url)


@bp.get("/hub/oauth_callback")
def oauth_callback() -> ResponseReturnValue:
    """Back from the provider: log in whom it vouches for (each state works once)."""
    authenticator = _redirect_authenticator()
    pending = session.pop("oauth_pending", None)
    result = authenticator.finish(pending, request.args.to_dict())
    return finish_login(result, safe_next(pending and pending.get("next")))


def _redirect_authenticator() -> RedirectAuthenticator:
    authenticator = get_authenticator()
    if not authenticator.redirects:
        raise HubError(404, "This hub logs in with its own form: /hub/login.")
    return cast("RedirectAuthenticator", authenticator)


@bp.get("/hub/logout")
def logout() -> ResponseReturnValue:
    """Log out here, and at the identity provider when it publishes where (naming the
    login by its id token when auth state keeps it)."""
    user = current_identity().user
    state = get_auth_states().load(user.name) if user is not None else None
    id_token = (state or {}).get("id_token")
    logout_user()
    if get_authenticator().redirects:
        authenticator = _redirect_authenticator()
        back = urljoin(authenticator.callback_url, "/hub/login")
        url = authenticator.logout_url(id_token, back)
        if url:
            return redirect(url)
    return redirect("/hub/login")


@bp.route("/hub/change-password", methods=["GET", "POST"])
def change_password() -> ResponseReturnValue:
    """The user's own password: the current one, then the new one twice."""
    user = require_login()
    if not get_passwords().enabled:
        raise HubError(404, "This hub has no passwords of its own: change yours where you sign in.")
    if request.method == "GET":
        return render_template("change_password.html", error=None, done=False)
    new = request.form.get("password", "")
    try:
        if new != request.form.get("password_confirm", ""):
            raise Invalid("The new password and its confirmation differ.")
        current = request.form.get("current_password", "")
        get_passwords().change(user.name, current, new, request.remote_addr)
    except DomainError as e:
        status = STATUS[e.outcome]
        return render_template("change_password.html", error=e.message, done=False), status
    # The change ended every login of the user, this one too: this browser stays in.
    login_user(get_users().get(user.name) or user)
    return render_template("change_password.html", error=None, done=True)


@bp.route("/user/<name>", strict_slashes=True)
def user_no_slash(name: str) -> ResponseReturnValue:
    """/user/<name> → /user/<name>/ (else it bounces between proxy and hub forever)."""
    query = request.query_string.decode()
    return redirect(f"{server_url_for(name)}{'?' + query if query else ''}")


@bp.route("/<path:path>")
def outside_hub(path: str) -> ResponseReturnValue:
    """Any other path outside /hub/ reaching the hub → the same path under /hub/."""
    if path.startswith("hub/"):
        _no_such_page()
    query = request.query_string.decode()
    return redirect(f"/hub/{path}{'?' + query if query else ''}")


def _no_such_page() -> NoReturn:
    """404; 405 where only other methods' rules take the path (this catch-all rule is the
    GET that matched: JupyterHub answers 405), which _method_not_allowed names."""
    adapter = current_app.create_url_adapter(request)
    methods = adapter.allowed_methods() if adapter else []
    if _routed_methods(methods):
        raise MethodNotAllowed(valid_methods=methods)
    abort(404)


@bp.app_errorhandler(MethodNotAllowed)
def _method_not_allowed(e: MethodNotAllowed) -> ResponseReturnValue:
    """405 naming the methods of the path's own rules; 404 for a path under /hub/ that only
    the catch-all's GET took (JupyterHub's API404 and Template404 answer any method so)."""
    methods = _routed_methods(e.valid_methods or ())
    if not methods:
        return error_response(404, NotFound.description)
    allow = ", ".join(sorted(methods | {"OPTIONS"}))
    return error_response(405, MethodNotAllowed.description, {"Allow": allow})


def _routed_methods(methods: Iterable[str]) -> set[str]:
    """Of the methods some rule takes the request's path with, those that are not OPTIONS
    nor, under /hub/, the catch-all's (there it is a 404, not a GET)."""
    routed = set(methods) - {"OPTIONS"}
    if request.path.startswith("/hub/") and _get_endpoint() == f"{bp.name}.{outside_hub.__name__}":
        routed -= {"GET", "HEAD"}
    return routed


def _get_endpoint() -> str | None:
    """The endpoint a GET of the request's path would reach, if any."""
    adapter = current_app.create_url_adapter(request)
    try:
        endpoint, _ = adapter.match(request.path, method="GET") if adapter else (None, None)
    except HTTPException:
        return None
    return cast("str | None", endpoint)


@bp.get("/hub/user/<path:rest>")
def user_redirect(rest: str) -> ResponseReturnValue:
    """Send a user to their running server, spawning, explaining or detecting loops."""
    # One rule for /hub/user/<name>, /hub/user/<name>/ and /hub/user/<name>/<path>.
    name, _, path = rest.partition("/")
    return handle(require_login(), name, path)


@bp.get("/hub/error/<int:code>")
def proxy_error(code: int) -> ResponseReturnValue:
    """CHP's error target: it could not reach a user's server.

    CHP asks for this page itself, without the browser's cookie: anyone may be
    behind it, so it says nothing of the server and polls nothing. The hub's
    /hub/user/ URL, which knows who asks, tells the owner why and offers Launch.
    """
    url = request.args.get("url", "")
    parts = url.split("?", 1)[0].split("/")
    if code in (502, 503) and len(parts) > 2 and parts[1] == "user":
        raise HubError(
            code,
            f"The server at /user/{unquote(parts[2])}/ is not answering. If it is yours, "
            "open it through the hub to see why and to start it again.",
            hub_link="/hub" + url,
        )
    raise HubError(code if 400 <= code < 600 else 500, f"The proxy answered {code} for {url}")


@bp.app_errorhandler(ProxyError)
def _proxy_down(e: ProxyError) -> ResponseReturnValue:
    return error_response(503, f"The proxy is unavailable: {e}")
