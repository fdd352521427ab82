"""The HTML pages (app/pages): login, home, spawn-pending, the redirects and error
pages, through Flask's test client.

No processes and no CHP: nothing listens on the proxy API port, and no request here
starts a server (servers are rows written by the test: stopped or failed ones).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.db import get_db
from app.models import Server, ServerState, User
from app.outcomes import shown
from app.tokens import get_tokens
from app.users import get_users
from tests.helpers import server_rows, xsrf_token

LogIn = Callable[..., TestResponse]
XSRF_FAILED = "The form is out of date (XSRF check failed): reload the page and try again."
DIED = "Your server stopped unexpectedly (exit status 1)."


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A hub whose admin is boss (who becomes one at login)."""
    return make_app(admin_users=["boss"])


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(client: FlaskClient, log_in: LogIn) -> FlaskClient:
    """The client, logged in as alice through the login form."""
    assert log_in(client, "alice").status_code == 302
    return client


@pytest.fixture
def add_server(app: Flask) -> Callable[..., None]:
    """add_server(user, state, **columns): a server row (the user is created if new)."""

    def _add(user: str, state: ServerState, **columns: object) -> None:
        get_users(app).get_or_create(user)
        with get_db(app).write() as session:
            owner = session.scalar(select(User).where(User.name == user))
            session.add(Server(user=owner, name="", state=state, **columns))

    return _add


def text_of(response: TestResponse) -> str:
    """The page as a person reads it (entities such as &#39; decoded)."""
    return html.unescape(response.text)


# -- login ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["no/slash", "_under", "-dash", "x" * 129, "two words"])
def test_login_with_an_invalid_name_is_403_with_the_message(
    client: FlaskClient, log_in: LogIn, name: str
) -> None:
    response = log_in(client, name)
    assert response.status_code == 403
    page = text_of(response)
    assert (
        f"Invalid username {shown(name)}: use letters, digits and . _ - @ +, starting "
        "with a letter or digit, at most 128 bytes."
    ) in page
    assert f'name="username" value="{name}"' in page  # the form again, as typed
    assert client.get("/hub/api/user").status_code == 403  # not logged in


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        # None or not a local path: where the user lands (their server, started: they have
        # none yet; redirect_to_server).
        (None, "/hub/spawn"),
        ("/hub/spawn-pending/alice", "/hub/spawn-pending/alice"),
        ("/user/alice/tree?x=1", "/user/alice/tree?x=1"),
        ("//evil.example/x", "/hub/spawn"),
        ("https://evil.example/", "/hub/spawn"),
        ("/\\evil.example", "/hub/spawn"),
        ("hub/home", "/hub/spawn"),
    ],
)
def test_login_redirects_to_local_paths_only(
    client: FlaskClient, log_in: LogIn, next_url: str | None, location: str
) -> None:
    response = log_in(client, "Alice", next=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == location
    assert client.get("/hub/api/user").json["name"] == "alice"


def test_login_page_of_someone_logged_in_sends_them_on(alice: FlaskClient) -> None:
    response = alice.get("/hub/login?next=/hub/spawn-pending/alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/hub/spawn-pending/alice"


def test_a_logged_in_users_requests_are_their_activity(
    app: Flask, alice: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in JupyterHub, using the hub counts (jupyterhub_active_users), at most once a
    minute."""
    seen = get_users(app).get("alice")
    assert seen is not None and seen.last_activity is not None
    later = seen.last_activity + timedelta(minutes=2)
    monkeypatch.setattr("app.users.utcnow", lambda: later)
    assert alice.get("/hub/home").status_code == 200
    again = get_users(app).get("alice")
    assert again is not None and again.last_activity == later
    monkeypatch.setattr("app.users.utcnow", lambda: later + timedelta(seconds=30))
    alice.get("/hub/home")
    within = get_users(app).get("alice")
    assert within is not None and within.last_activity == later


def test_logout_ends_the_session(alice: FlaskClient) -> None:
    response = alice.get("/hub/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/hub/login"
    assert alice.get("/hub/home").status_code == 302
    assert alice.get("/hub/api/user").status_code == 403


# -- pages that need a login ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/hub/home", "/hub/login?next=%2Fhub%2Fhome"),
        ("/hub/home?tab=1", "/hub/login?next=%2Fhub%2Fhome%3Ftab%3D1"),
        ("/hub/spawn", "/hub/login?next=%2Fhub%2Fspawn"),
        ("/hub/token", "/hub/login?next=%2Fhub%2Ftoken"),
        ("/hub/spawn-pending/alice", "/hub/login?next=%2Fhub%2Fspawn-pending%2Falice"),
        ("/hub/user/alice/tree?x=1", "/hub/login?next=%2Fhub%2Fuser%2Falice%2Ftree%3Fx%3D1"),
    ],
)
def test_logged_out_is_sent_to_login_with_next(
    app: Flask, client: FlaskClient, path: str, location: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == location
    assert server_rows(app) == []  # /hub/spawn started nothing


def test_home_of_a_user_without_a_server(alice: FlaskClient) -> None:
    response = alice.get("/hub/home")
    assert response.status_code == 200
    page = text_of(response)
    assert "<h1>Hello, alice</h1>" in page
    assert '<a id="start" class="button primary" href="/hub/spawn">Start My Server</a>' in page
    assert "Stop My Server" not in page
    # Nothing listens on the proxy API port here.
    assert "The proxy is unavailable" in page


@pytest.mark.parametrize(
    ("who", "of", "location"),
    [
        ("alice", "bob", "/hub/spawn-pending/alice"),  # another's: to one's own
        ("alice", "alice", "/hub/home"),  # no server: nothing to wait for
        ("boss", "bob", "/hub/home"),  # an admin may look at bob's
        ("alice", "Alice", "/hub/home"),  # a name in any case is that user
        ("boss", "BOB", "/hub/home"),
    ],
)
def test_spawn_pending_redirects(
    client: FlaskClient,
    log_in: LogIn,
    add_server: Callable[..., None],
    who: str,
    of: str,
    location: str,
) -> None:
    add_server("bob", ServerState.STOPPED)
    assert log_in(client, who).status_code == 302
    response = client.get(f"/hub/spawn-pending/{of}")
    assert response.status_code == 302
    assert response.headers["Location"] == location


@pytest.mark.parametrize("path", ["/hub/spawn-pending/ａｌｉｃｅ", "/hub/spawn/𝐚𝐥𝐢𝐜𝐞"])
def test_a_look_alike_name_in_a_page_path_is_refused(alice: FlaskClient, path: str) -> None:
    response = alice.get(path)
    assert response.status_code == 400
    assert "Invalid username" in text_of(response)


def test_spawn_pending_of_a_failed_spawn_offers_relaunch(
    app: Flask, alice: FlaskClient, add_server: Callable[..., None]
) -> None:
    add_server("alice", ServerState.FAILED, failure_status=418, failure_message="Out of tea")
    response = alice.get("/hub/spawn-pending/alice")
    assert response.status_code == 418
    page = text_of(response)
    assert "<h1>Spawn failed</h1>" in page and "Out of tea" in page
    assert '<a class="button primary" id="relaunch" href="/hub/spawn">Relaunch Server</a>' in page
    assert server_rows(app) == [("alice", "", "failed")]


def test_hub_user_url_of_another_user_goes_to_ones_own(alice: FlaskClient) -> None:
    response = alice.get("/hub/user/bob/tree/x.ipynb?kernel=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/user/alice/tree/x.ipynb?kernel=1"


@pytest.mark.parametrize(
    ("state", "columns", "status", "says"),
    [
        (
            ServerState.FAILED,
            {"failure_status": 418, "failure_message": "Out of tea."},
            418,
            "Out of tea. You can try restarting your server from the home page.",
        ),
        (
            ServerState.STOPPED,
            {"stop_reason": DIED},
            424,
            DIED,
        ),
    ],
)
def test_hub_user_url_explains_instead_of_spawning(
    app: Flask,
    alice: FlaskClient,
    add_server: Callable[..., None],
    state: ServerState,
    columns: dict[str, object],
    status: int,
    says: str,
) -> None:
    add_server("alice", state, **columns)
    response = alice.get("/hub/user/alice/tree")
    assert response.status_code == status
    assert says in text_of(response)
    assert server_rows(app) == [("alice", "", state.value)]  # no new spawn


def test_no_implicit_spawn_when_disabled(make_app: Callable[..., Flask], log_in: LogIn) -> None:
    app = make_app(implicit_spawn=False)
    client = app.test_client()
    assert log_in(client, "alice").status_code == 302
    response = client.get("/hub/user/alice/")
    assert response.status_code == 424
    page = text_of(response)
    assert "<h1>Server not running</h1>" in page and "alice's server is not running." in page
    assert 'id="launch" href="/hub/spawn">Launch Server</a>' in page
    assert server_rows(app) == []


# -- paths outside /hub/ ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/user/alice", "/user/alice/"),
        ("/user/alice?token=abc&a=1", "/user/alice/?token=abc&a=1"),
        ("/user/al@ice?x", "/user/al@ice/?x"),
        ("/user/a%20b", "/user/a%20b/"),
    ],
)
def test_user_url_without_a_slash_gets_one_with_the_query(
    client: FlaskClient, path: str, location: str
) -> None:
    response = client.get(path)
    assert response.status_code in (301, 302)
    assert response.headers["Location"] == location


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/", "/hub/"),
        ("/hub/", "/hub/login"),
        ("/tree", "/hub/tree"),
        ("/user/alice/", "/hub/user/alice/"),
        ("/user/alice/lab/tree?reset=1&a=b", "/hub/user/alice/lab/tree?reset=1&a=b"),
        ("/services/x/", "/hub/services/x/"),
    ],
)
def test_other_paths_go_under_hub(client: FlaskClient, path: str, location: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == location


def test_unknown_hub_path_is_404_not_a_redirect(client: FlaskClient) -> None:
    response = client.get("/hub/no-such-page")
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert "<h1>Error 404</h1>" in response.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/hub/api/users/alice/activity", "OPTIONS, POST"),
        ("HEAD", "/hub/api/users/alice/activity", "OPTIONS, POST"),
        ("GET", "/hub/api/authorizations/token", "OPTIONS, POST"),
        ("GET", "/hub/api/shutdown", "OPTIONS, POST"),
        ("GET", "/hub/api/users/alice/password", "OPTIONS, PUT"),
        ("GET", "/hub/api/oauth2/token", "OPTIONS, POST"),
    ],
)
def test_a_get_of_a_path_routed_for_other_methods_is_405_naming_them(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    # As JupyterHub answers (and its rest-api.yml's callers expect): the path exists.
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    if path.startswith("/hub/api/") and method == "GET":
        assert response.json["status"] == 405


@pytest.mark.parametrize("path", ["/hub/api/no-such-thing", "/hub/api/users/alice/nothing"])
def test_a_get_of_an_unknown_api_path_is_still_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["status"] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path", ["/hub/api/no-such-thing", "/hub/api/users/alice/nothing", "/hub/no-such-page"]
)
def test_any_method_on_an_unknown_hub_path_is_404(
    client: FlaskClient, method: str, path: str
) -> None:
    # JupyterHub's API404 and Template404 answer 404 whatever the method.
    response = client.open(path, method=method)
    assert response.status_code == 404
    assert "Allow" not in response.headers
    if path.startswith("/hub/api/"):
        assert response.json["status"] == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/hub/api/users/alice/activity", "OPTIONS, POST"),
        ("DELETE", "/hub/api/shutdown", "OPTIONS, POST"),
        ("POST", "/hub/api/users/alice/server/progress", "GET, HEAD, OPTIONS"),
        ("PUT", "/hub/api/users", "GET, HEAD, OPTIONS, POST"),
        # Outside /hub/ only GET is taken (to send it under /hub/), as by JupyterHub.
        ("POST", "/no-such-page", "GET, HEAD, OPTIONS"),
    ],
)
def test_another_method_on_a_routed_path_is_405_naming_the_routes_methods(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed


def test_health(client: FlaskClient) -> None:
    response = client.get("/hub/health")
    assert (response.status_code, response.text) == (200, "ok\n")


def test_the_default_icon_request_gets_the_hubs_icon(client: FlaskClient) -> None:
    """A page that names no icon (a server's own) makes the browser ask for /favicon.ico,
    which the hub sends to /hub/favicon.ico."""
    assert client.get("/favicon.ico").headers["Location"] == "/hub/favicon.ico"
    response = client.get("/hub/favicon.ico")
    assert (response.status_code, response.headers["Location"]) == (302, "/hub/static/favicon.svg")
    with client.get("/hub/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
        assert icon.text.startswith("<svg ")


# -- the proxy's error target ---------------------------------------------------------


NOT_ANSWERING = "is not answering. If it is yours, open it through the hub"


@pytest.mark.parametrize(
    ("code", "url", "status", "says", "hub_link"),
    [
        (503, "/user/alice/tree?x=1", 503, NOT_ANSWERING, "/hub/user/alice/tree?x=1"),
        (502, "/user/bob/", 502, NOT_ANSWERING, "/hub/user/bob/"),
        (503, "/user/carol/", 503, NOT_ANSWERING, "/hub/user/carol/"),  # never started
        (404, "/user/alice/", 404, "The proxy answered 404 for /user/alice/", None),
        (503, "/hub/api/users", 503, "The proxy answered 503 for /hub/api/users", None),
        (999, "/x", 500, "The proxy answered 999 for /x", None),
    ],
)
def test_proxy_error_page_tells_anyone_nothing_of_the_server(
    app: Flask,
    client: FlaskClient,
    add_server: Callable[..., None],
    code: int,
    url: str,
    status: int,
    says: str,
    hub_link: str | None,
) -> None:
    add_server("alice", ServerState.STOPPED, stop_reason=DIED)
    add_server("bob", ServerState.STOPPED)
    response = client.get(f"/hub/error/{code}", query_string={"url": url})
    assert response.status_code == status
    page = text_of(response)
    assert says in page
    assert DIED not in page and "not running" not in page  # CHP asks, not the owner
    if hub_link is not None:
        assert f'id="hub-link" href="{escape(hub_link)}"' in page
    assert server_rows(app) == [("alice", "", "stopped"), ("bob", "", "stopped")]


# -- XSRF on forms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/hub/spawn", {}),
        ("/hub/spawn", {"_xsrf": "forged"}),
        ("/hub/login", {"username": "bob"}),
        ("/hub/login", {"username": "bob", "_xsrf": ""}),
    ],
)
def test_posting_a_page_without_the_xsrf_token_is_403(
    app: Flask, alice: FlaskClient, path: str, form: dict[str, str]
) -> None:
    response = alice.post(path, data=form)
    assert response.status_code == 403
    assert XSRF_FAILED in text_of(response)
    assert alice.get("/hub/api/user").json["name"] == "alice"
    assert server_rows(app) == []


# -- /hub/user-redirect/ and /hub/ ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/hub/user-redirect/git-pull?repo=x&a=1", "/user/alice/git-pull?repo=x&a=1"),
        ("/hub/user-redirect/lab/tree/a%20b.ipynb", "/user/alice/lab/tree/a%20b.ipynb"),
        ("/hub/user-redirect/", "/user/alice/"),
        ("/hub/user-redirect/%2E%2E/%2E%2E/hub/admin", "/user/alice/hub/admin"),
    ],
)
def test_user_redirect_goes_to_ones_own_server(
    alice: FlaskClient, path: str, location: str
) -> None:
    response = alice.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == location


def test_user_redirect_logs_in_first_keeping_the_path(client: FlaskClient, log_in: LogIn) -> None:
    response = client.get("/hub/user-redirect/git-pull?repo=x")
    assert response.status_code == 302
    assert response.headers["Location"] == (
        "/hub/login?next=%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dx"
    )
    after = log_in(client, "alice", next="/hub/user-redirect/git-pull?repo=x")
    assert after.headers["Location"] == "/hub/user-redirect/git-pull?repo=x"
    assert client.get(after.headers["Location"]).headers["Location"] == (
        "/user/alice/git-pull?repo=x"
    )


@pytest.mark.parametrize(
    ("redirect_to_server", "state", "location"),
    [
        # JupyterHub's default: to the server, started if need be.
        (True, None, "/hub/spawn"),
        (True, ServerState.STOPPED, "/hub/spawn"),
        (True, ServerState.SPAWNING, "/user/alice/"),
        (True, ServerState.RUNNING, "/user/alice/"),
        # A failure is shown, never started again unasked (JupyterHub would spawn).
        (True, ServerState.FAILED, "/hub/spawn-pending/alice"),
        (False, None, "/hub/home"),
        (False, ServerState.RUNNING, "/hub/home"),
    ],
)
def test_login_and_the_hub_root_lead_to_the_users_server(
    make_app: Callable[..., Flask],
    log_in: LogIn,
    redirect_to_server: bool,
    state: ServerState | None,
    location: str,
) -> None:
    app = make_app(redirect_to_server=redirect_to_server)
    client = app.test_client()
    if state is not None:
        owner = get_users(app).get_or_create("alice")
        with get_db(app).write() as session:
            session.add(Server(user_id=owner.id, name="", state=state, url="http://127.0.0.1:9"))
    landed = log_in(client, "alice")
    assert landed.status_code == 302
    assert landed.headers["Location"] == location
    for again in ("/hub/", "/hub/login"):
        response = client.get(again)
        assert response.status_code == 302
        assert response.headers["Location"] == location
    # A `next` still wins; an unsafe one counts as none.
    assert log_in(app.test_client(), "alice", next="/hub/token").headers["Location"] == (
        "/hub/token"
    )
    unsafe = log_in(app.test_client(), "alice", next="//evil.example/")
    assert unsafe.headers["Location"] == location


def test_the_hub_root_sends_a_visitor_to_the_login_page(client: FlaskClient) -> None:
    """Not /hub/home (whose login would come back to it): after logging in from /hub/ a
    person lands where the settings say (JupyterHub's)."""
    response = client.get("/hub/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/hub/login"


# -- named servers ----------------------------------------------------------------------


@pytest.fixture
def named(make_app: Callable[..., Flask], log_in: LogIn) -> tuple[Flask, FlaskClient]:
    """A hub with named servers allowed, and alice logged in."""
    app = make_app(allow_named_servers=True, admin_users=["boss"])
    client = app.test_client()
    assert log_in(client, "alice").status_code == 302
    return app, client


def add_named(app: Flask, user: str, name: str, state: ServerState, **columns: object) -> None:
    get_users(app).get_or_create(user)
    with get_db(app).write() as session:
        owner = session.scalar(select(User).where(User.name == user))
        session.add(Server(user=owner, name=name, state=state, **columns))


def test_home_lists_named_servers_with_their_actions(named: tuple[Flask, FlaskClient]) -> None:
    app, client = named
    add_named(app, "alice", "gpu", ServerState.FAILED, failure_message="<b>no GPU</b>")
    add_named(app, "alice", "big", ServerState.RUNNING, url="http://127.0.0.1:9")
    add_named(app, "bob", "secret", ServerState.STOPPED)
    page = client.get("/hub/home").text
    assert '<h2 id="named-heading">Named servers</h2>' in page
    assert '<label for="new-server-name">Server name</label>' in page
    rows = page.split('<tr data-server="')[1:]
    assert [row.split('"', 1)[0] for row in rows] == ["big", "gpu"]  # by name, not bob's
    big, gpu = rows
    assert "Running" in big and 'href="/user/alice/big/"' in big
    assert 'data-stop-url="/hub/api/users/alice/servers/big"' in big
    assert "Failed: &lt;b&gt;no GPU&lt;/b&gt;" in gpu and "<b>" not in gpu
    assert 'href="/hub/spawn/alice/gpu" aria-label="Start gpu">Start</a>' in gpu
    assert 'data-delete-url="/hub/api/users/alice/servers/gpu"' in gpu
    assert "data-stop-url" not in gpu


def test_home_without_named_servers_has_no_such_section(alice: FlaskClient) -> None:
    assert "Named servers" not in alice.get("/hub/home").text


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/hub/spawn/alice/.hidden", 400, "Invalid server name '.hidden'"),
        ("/hub/spawn/alice/" + "x" * 65, 400, "at most 64 bytes"),
        ("/hub/spawn/bob/x", 403, "You may not start servers of bob."),
        ("/hub/spawn/bob", 403, "You may not start servers of bob."),
    ],
)
def test_spawn_page_of_a_named_server_checks_name_and_owner(
    named: tuple[Flask, FlaskClient], path: str, status: int, says: str
) -> None:
    app, client = named
    get_users(app).get_or_create("bob")
    response = client.get(path)
    assert response.status_code == status
    assert says in text_of(response)
    assert server_rows(app) == []


def test_spawn_page_of_a_named_server_is_404_when_not_allowed(
    app: Flask, alice: FlaskClient
) -> None:
    response = alice.get("/hub/spawn/alice/gpu")
    assert response.status_code == 404
    assert "Named servers are not enabled on this hub." in text_of(response)
    assert server_rows(app) == []


def test_failed_named_server_relaunches_itself(named: tuple[Flask, FlaskClient]) -> None:
    app, client = named
    add_named(app, "alice", "gpu", ServerState.FAILED, failure_status=418, failure_message="Tea")
    for path in ("/hub/spawn-pending/alice/gpu", "/hub/user/alice/gpu/lab"):
        response = client.get(path)
        assert response.status_code == 418, path
        page = text_of(response)
        assert "Tea" in page
        assert 'id="relaunch" href="/hub/spawn/alice/gpu">Relaunch Server</a>' in page
    assert server_rows(app) == [("alice", "gpu", "failed")]


def test_hub_user_url_of_a_named_server_goes_to_it(named: tuple[Flask, FlaskClient]) -> None:
    app, client = named
    add_named(app, "alice", "big", ServerState.SPAWNING)
    add_named(app, "alice", "", ServerState.STOPPED, stop_reason=DIED)
    response = client.get("/hub/user/alice/big/lab?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/hub/spawn-pending/alice/big"
    pending = client.get("/hub/spawn-pending/alice/big")
    assert 'data-progress-url="/hub/api/users/alice/servers/big/progress"' in pending.text
    # A first step that names no server of hers is a path in her default server.
    other = client.get("/hub/user/alice/lab/tree")
    assert other.status_code == 424 and DIED in text_of(other)


# -- spawn options ------------------------------------------------------------------------

OPTIONS = [
    {"name": "image", "label": "Image", "choices": ["base", "<scipy>"], "default": "<scipy>"},
    {"name": "memory", "label": "Memory", "choices": ["1G", "4G"]},
]


@pytest.fixture
def with_options(make_app: Callable[..., Flask], log_in: LogIn) -> tuple[Flask, FlaskClient]:
    app = make_app(spawn_options=OPTIONS, implicit_spawn=True)
    client = app.test_client()
    assert log_in(client, "alice").status_code == 302
    return app, client


def test_spawn_page_shows_the_declared_form(with_options: tuple[Flask, FlaskClient]) -> None:
    app, client = with_options
    response = client.get("/hub/spawn")
    assert response.status_code == 200
    page = response.text
    assert '<label for="option-1">Image</label>' in page
    assert '<select id="option-1" name="image">' in page
    assert '<option value="&lt;scipy&gt;" selected>&lt;scipy&gt;</option>' in page
    assert '<option value="1G" selected>1G</option><option value="4G">4G</option>' in page
    assert 'name="_xsrf"' in page
    assert server_rows(app) == []  # the form started nothing


@pytest.mark.parametrize(
    ("method", "values", "says"),
    [
        ("post", {"image": "evil", "memory": "1G"}, "Spawn option 'image' (Image): 'evil' is not"),
        ("post", {"memory": "64G"}, "Spawn option 'memory' (Memory): '64G' is not one of 1G, 4G"),
        ("get", {"memory": "64G"}, "Spawn option 'memory' (Memory): '64G' is not one of 1G, 4G"),
    ],
)
def test_spawn_options_outside_the_choices_are_400_naming_the_field(
    with_options: tuple[Flask, FlaskClient], method: str, values: dict[str, str], says: str
) -> None:
    app, client = with_options
    if method == "post":
        values = {**values, "_xsrf": xsrf_token(client.get("/hub/spawn").text)}
        response = client.post("/hub/spawn", data=values)
    else:
        response = client.get("/hub/spawn", query_string=values)
    assert response.status_code == 400
    assert says in text_of(response)
    assert server_rows(app) == []


def test_implicit_spawn_with_options_goes_to_the_form_first(
    with_options: tuple[Flask, FlaskClient],
) -> None:
    app, client = with_options
    response = client.get("/hub/user/alice/lab")
    assert response.status_code == 302
    assert response.headers["Location"] == "/hub/spawn"
    assert server_rows(app) == []


# -- admin --------------------------------------------------------------------------------


@pytest.mark.parametrize("admin_access", [True, False])
def test_admin_page_links_servers_only_with_admin_access(
    make_app: Callable[..., Flask], log_in: LogIn, admin_access: bool
) -> None:
    client = make_app(admin_users=["boss"], admin_access=admin_access).test_client()
    assert log_in(client, "boss").status_code == 302
    page = client.get("/hub/admin")
    assert page.status_code == 200
    assert f'data-open-servers="{str(admin_access).lower()}"' in page.text
    assert '<label for="new-usernames">Usernames, one per line</label>' in page.text


def test_admin_page_is_403_for_others(alice: FlaskClient) -> None:
    response = alice.get("/hub/admin")
    assert response.status_code == 403
    assert "The admin page is for admins." in text_of(response)


def test_home_with_a_token_instead_of_the_cookie_shows_the_owners_servers(
    named: tuple[Flask, FlaskClient],
) -> None:
    """A token's owner is looked up without their servers: pages read them themselves."""
    app, _ = named
    add_named(app, "alice", "big", ServerState.RUNNING, url="http://127.0.0.1:9")
    alice = get_users(app).get("alice")
    assert alice is not None
    token, _row = get_tokens(app).create(alice.id, scopes=[])
    page = app.test_client().get("/hub/home", headers={"Authorization": f"token {token}"})
    assert page.status_code == 200
    assert 'href="/user/alice/big/"' in page.text
