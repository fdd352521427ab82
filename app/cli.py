"""The `flaskhub` command: run | token | user add | user set-password | user bind-account |
db upgrade | singleuser."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app import logs
from app.config import CONFIG_FILE_ENV, ConfigError, Settings, load, resolve_secrets
from app.names import normalize_username
from app.outcomes import DomainError, Invalid
from app.ports import listen_addresses, unusable
from app.singleuser import main as singleuser_main
from app.version import __version__

if TYPE_CHECKING:
    from app.users import UserService

log = logging.getLogger("flaskhub")


def _settings() -> Settings:
    """Validated settings with secrets, or a clean exit naming the problem."""
    # Whatever the hub creates (database, secrets, logs) is for its own account only.
    os.umask(0o077)
    try:
        return resolve_secrets(load())
    except ConfigError as e:
        raise click.ClickException(f"Configuration error: {e}") from None


def _shown_url(db_url: str) -> str:
    """The database URL with its password masked, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable db_url)"


def _migrate(settings: Settings) -> None:
    from app.migrations import upgrade

    try:
        upgrade(settings.db_url)
    except Exception as e:  # the driver's own errors vary; the message says enough
        raise click.ClickException(
            f"Cannot prepare the database {_shown_url(settings.db_url)}: {e}"
        ) from e


def _user_service(settings: Settings) -> UserService:
    from app.db import Database
    from app.users import UserService

    return UserService(Database(settings.db_url))


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML settings file (default ./flaskhub.toml if present).",
)
@click.version_option(__version__, prog_name="flaskhub")
def main(config_file: str | None) -> None:
    """FlaskHub: a multi-user server hub, after JupyterHub."""
    if config_file:
        os.environ[CONFIG_FILE_ENV] = str(Path(config_file).resolve())


@main.command()
def run() -> None:
    """Migrate the database, then become the hub: gunicorn, which starts CHP; Ctrl-C stops all."""
    started = time.time()
    settings = _settings()
    logs.configure(settings.log_level)
    # Before anything is changed: a spawner that cannot work here, or an address in use,
    # stops start-up now.
    hub_ips = _hub_ips(settings)
    _check_listen(settings, hub_ips)
    # Alembic lists its plugins at INFO; which migrations ran (alembic.runtime.migration) stays.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    _warn_shared_account(settings)
    _warn_unknown_proxy(settings)
    _warn_admin_groups_kept(settings)
    _warn_passwords_in_path_mode(settings)
    _migrate(settings)
    _ensure_admins(settings)
    _load_roles(settings)
    _sync_service_clients(settings)
    init_spawners = _recover()
    binds = [arg for ip in hub_ips for arg in ("--bind", _bind(ip, settings))]
    if settings.hub_socket:
        # The proxy's way in: only there (and from trusted_proxies) is X-Forwarded-For believed.
        binds += ["--bind", f"unix:{settings.hub_socket}"]
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", *binds]
    sys.stdout.flush()
    sys.stderr.flush()
    # The same process (Ctrl-C and kill reach it), without what preparing loaded.
    env = {**_hub_env(settings), **_startup_env(started, init_spawners)}
    os.execve(sys.executable, [*gunicorn, "app:create_app()"], env)


def _check_listen(settings: Settings, hub_ips: list[str]) -> None:
    """Exit with one line naming the setting if an address to listen on is in use."""
    problem = unusable(listen_addresses(settings, hub_ips))
    if problem is not None:
        raise click.ClickException(problem)


def _hub_ips(settings: Settings) -> list[str]:
    """Where the hub listens: hub_ip, and where servers in containers reach it (after
    the spawner's checks of what would fail every spawn)."""
    from app.spawners import spawner_class
    from app.spawners.base import SpawnerError

    spawner = spawner_class(settings.spawner)
    try:
        spawner.preflight(settings)
        return [settings.hub_ip, *spawner.hub_connect_ips(settings)]
    except SpawnerError as e:
        raise click.ClickException(str(e)) from None


def _bind(ip: str, settings: Settings) -> str:
    return f"[{ip}]:{settings.hub_port}" if ":" in ip else f"{ip}:{settings.hub_port}"


def _warn_shared_account(settings: Settings) -> None:
    """Say once when users are not isolated: every server runs as the hub's account."""
    from app.spawners import spawner_class

    try:
        shares = spawner_class(settings.spawner).shares_hub_account()
    except (ImportError, AttributeError, ValueError) as e:
        raise click.ClickException(f"setting 'spawner': {e}") from None
    if not shares:
        return
    log.warning(
        "Every user's server runs as this hub's own account (uid %s): code in any server "
        "can read %s and other users' files. Use FlaskHub like this for one person only "
        "(README, Security).",
        os.geteuid(),
        settings.data_dir,
    )


def _warn_unknown_proxy(settings: Settings) -> None:
    """Say when no proxy's X-Forwarded-For can be believed: every login would then seem to
    come from the proxy's address, and the login throttle would count them all as one."""
    if settings.hub_socket or settings.trusted_proxies:
        return
    log.warning(
        "The proxy is not started by this hub and neither hub_socket nor trusted_proxies "
        "is set: the hub believes no X-Forwarded-For, so every login through the proxy "
        "counts as one from the proxy's address. Set FLASKHUB_HUB_SOCKET (a socket the "
        "proxy shares with the hub) or FLASKHUB_TRUSTED_PROXIES (its address)."
    )


def _warn_admin_groups_kept(settings: Settings) -> None:
    """Say when leaving an admin group ends admin only at the next login: the hub can ask
    a provider again only with the login's tokens (crypt_key), a directory only with a
    service account (ldap_bind_dn)."""
    if not settings.admin_groups:
        return
    if settings.authenticator == "ldap":
        missing = "" if settings.ldap_bind_dn else "FLASKHUB_LDAP_BIND_DN (a service account)"
    elif settings.authenticator in ("oidc", "oauth2"):
        missing = "" if settings.crypt_key else "FLASKHUB_CRYPT_KEY (to keep the login's tokens)"
    else:
        return
    if missing:
        log.warning(
            "admin_groups is set, but the hub cannot ask the %s provider again after a "
            "login: a user taken out of an admin group stays admin until they log in again. "
            "Set %s.",
            settings.authenticator,
            missing,
        )


def _warn_passwords_in_path_mode(settings: Settings) -> None:
    """Say that in path mode a user's server can show a false login form on the hub's
    own origin (a service worker), where people type their password."""
    if settings.subdomain_host or settings.authenticator not in ("password", "ldap"):
        return
    log.warning(
        "Users' servers share the hub's origin (no subdomain_host) and people type "
        "passwords into the hub (authenticator = %s): a server's service worker could "
        "show them a false login form. Set FLASKHUB_SUBDOMAIN_HOST to give each user's "
        "servers an origin of their own (README: Security).",
        settings.authenticator,
    )


def _hub_env(settings: Settings) -> dict[str, str]:
    """gunicorn's environment: metrics in multiprocess mode, in a directory of data_dir.

    Always, even with one worker: a worker gunicorn restarts keeps its counts.
    gunicorn's on_starting empties the directory; an operator's own
    PROMETHEUS_MULTIPROC_DIR is used instead if set.
    """
    env = dict(os.environ)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(settings.data_dir) / "metrics"))
    return env


def _recover() -> float:
    """Settle servers left spawning or stopping by a previous hub (before any worker);
    how long that took."""
    from app import create_app
    from app.servers import get_servers

    servers = get_servers(create_app())
    begun = time.monotonic()
    servers.recover()
    return time.monotonic() - begun


def _startup_env(started: float, init_spawners: float) -> dict[str, str]:
    from app.metrics import startup_env

    return startup_env(started, init_spawners)


def _ensure_admins(settings: Settings) -> None:
    users = _user_service(settings)
    for name in map(normalize_username, settings.admin_users):
        users.get_or_create(name, admin=True)
        users.set_admin(name, True)


def _load_roles(settings: Settings) -> None:
    """Store the `load_roles` setting's roles and members (before any worker)."""
    from app.db import Database
    from app.roles import RoleService

    try:
        RoleService(Database(settings.db_url)).load(settings.load_roles)
    except DomainError as e:
        raise click.ClickException(f"setting 'load_roles': {e.message}") from None


def _sync_service_clients(settings: Settings) -> None:
    """The OAuth clients of the `services` setting, as it says (before any worker)."""
    from app.db import Database
    from app.services.registry import ServiceRegistry

    ServiceRegistry(Database(settings.db_url), settings).sync_clients()


@main.command()
@click.argument("name")
@click.option("--note", default="Requested with `flaskhub token`", help="Shown in token lists.")
def token(name: str, note: str) -> None:
    """Print a new API token for user NAME (created if new)."""
    from app.tokens import TokenService

    settings = _settings()
    _migrate(settings)
    users = _user_service(settings)
    try:
        username = normalize_username(name)
    except Invalid as e:
        raise click.ClickException(str(e)) from None
    admin = username in map(normalize_username, settings.admin_users)
    if users.get(username) is None:
        click.echo(f"Creating user {username}{' (admin)' if admin else ''}", err=True)
    user = users.get_or_create(username, admin=admin)
    value, _row = TokenService(users.db).create(user.id, note=note, scopes=["inherit"])
    click.echo(value)


@main.group()
def user() -> None:
    """Manage user accounts."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(name: str, admin: bool, password_stdin: bool) -> None:
    """Create user NAME with a password (for the `password` authenticator)."""
    from app.auth.authenticators import hash_password

    settings = _settings()
    _migrate(settings)
    username = _username(name)
    password = _new_password(password_stdin)
    users = _user_service(settings)
    users.get_or_create(username, admin=admin)
    if admin:
        users.set_admin(username, True)
    users.set_password_hash(username, hash_password(password))
    click.echo(f"User {username} {'(admin) ' if admin else ''}can now log in.")


@user.command("unbind")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Every user (the hub changed provider).")
def user_unbind(name: str | None, every: bool) -> None:
    """Release user NAME from the identity provider's account it is bound to (when the
    person's account there changed): the next login through the provider binds it again."""
    if every == bool(name):
        raise click.UsageError("Give a NAME or --all.")
    settings = _settings()
    _migrate(settings)
    if name is None:
        count = _user_service(settings).unbind_all_providers()
        click.echo(f"Released {count} names: each is bound again at its next login.")
        return
    username = _username(name)
    try:
        bound = _user_service(settings).unbind_provider(username)
    except DomainError as e:
        raise click.ClickException(e.message) from None
    if bound is None:
        click.echo(f"{username} is bound to no account of an identity provider.")
        return
    issuer, subject = bound
    click.echo(
        f"{username} is no longer bound to sub {subject} of {issuer}: the next login of "
        f"{username} through the provider binds it again."
    )


@user.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_set_password(name: str, password_stdin: bool) -> None:
    """Reset the password of user NAME; their logins in every browser end."""
    from app.auth.passwords import Passwords
    from app.logins import LoginThrottle

    settings = _settings()
    _migrate(settings)
    username = _username(name)
    password = _new_password(password_stdin)
    try:
        users = _user_service(settings)
        Passwords(users, settings, LoginThrottle(users.db, settings)).reset(username, password)
    except DomainError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"The password of {username} is changed.")


@user.command("bind-account")
@click.argument("name")
@click.argument("account")
def user_bind_account(name: str, account: str) -> None:
    """Run user NAME's servers as ACCOUNT, a system account the hub made and kept, with
    its files (after the hub's database was lost or replaced). As root."""
    from app.db import Database
    from app.system_accounts import SystemAccounts

    settings = _settings()
    _migrate(settings)
    # The binding is logged (to standard error), as the API's is in the hub's log.
    logs.configure("INFO")
    by = f"flaskhub user bind-account (uid {os.geteuid()})"
    try:
        accounts = SystemAccounts(Database(settings.db_url), settings)
        binding = accounts.bind(_username(name), account, by)
    except DomainError as e:
        raise click.ClickException(e.message) from None
    if not binding.changed:
        click.echo(f"System account {binding.system_account} is {binding.name}'s already.")
        return
    click.echo(
        f"{binding.name}'s servers now run as system account {binding.system_account}, "
        f"with its files in {binding.home}."
    )


@main.group()
def server() -> None:
    """Manage users' servers."""


@server.command("forget-home")
@click.argument("name")
@click.option("--server", "server_name", default="", help="A named server (default: the default).")
def server_forget_home(name: str, server_name: str) -> None:
    """Let user NAME's next server start on any machine, with an empty home there, when
    the machine holding their home (swarm, local volumes) is gone for good."""
    from app.db import Database
    from app.servers.rows import forget_kept

    settings = _settings()
    _migrate(settings)
    username = _username(name)
    try:
        node = forget_kept(Database(settings.db_url), username, server_name, "home_node")
    except DomainError as e:
        raise click.ClickException(e.message) from None
    if node is None:
        click.echo(f"{username}'s server is tied to no machine: it starts wherever it fits.")
        return
    log.warning(
        "%s's server is no longer tied to node %s (flaskhub server forget-home)", username, node
    )
    click.echo(
        f"{username}'s next server starts wherever it fits, with an empty home unless that "
        f"machine has one: the files stay on node {node}."
    )


def _username(name: str) -> str:
    try:
        return normalize_username(name)
    except Invalid as e:
        raise click.ClickException(str(e)) from None


def _new_password(password_stdin: bool) -> str:
    """A new password from standard input or the prompt (twice), checked like the API's."""
    from app.auth.passwords import check_new_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_new_password(password)
    except Invalid as e:
        raise click.ClickException(e.message) from None


@main.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    _migrate(settings)
    click.echo(f"Database {_shown_url(settings.db_url)} is up to date.")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def singleuser(args: tuple[str, ...]) -> None:
    """Run the built-in single-user server (what the hub spawns by default)."""
    singleuser_main(list(args))


if __name__ == "__main__":
    main()
