"""app/config/: the settings table, its sources and precedence, validation, secrets."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from app.config import SETTINGS, ConfigError, check_data_dir, load, resolve_secrets


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty directory, so no stray ./flaskhub.toml is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, values: dict[str, Any]) -> Path:
    """Write flat settings as TOML (JSON spells strings, numbers, bools and arrays alike)."""
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    """A data_dir that does not exist yet."""
    return tmp_path / "data"


# -- defaults and derived values ----------------------------------------------


def test_defaults(cwd: Path) -> None:
    settings = load(environ={})
    assert settings.ip == "127.0.0.1"
    assert settings.port == 8000
    assert settings.hub_port == 8081
    assert settings.authenticator == "dummy"
    assert settings.spawner_cmd == ["flaskhub", "singleuser"]
    assert settings.workers == 1
    assert settings.slow_spawn_timeout == 10.0
    assert settings.concurrent_spawn_limit == 100
    assert settings.headers == {}
    assert settings.proxy_auth_token == ""
    assert settings.proxy_api_url == "http://127.0.0.1:8001"
    assert settings.data_dir == str(cwd.resolve() / "data")
    assert settings.hub_url == "http://127.0.0.1:8081"
    assert settings.public_url == "http://127.0.0.1:8000"


def test_several_proxies_are_named_in_proxy_api_urls_the_first_as_proxy_api_url() -> None:
    urls = ["http://10.0.0.1:8001", "http://10.0.0.2:8001"]
    settings = load(environ={}, overrides={"proxy_api_urls": urls, "proxy_auto_start": False})
    assert settings.proxy_api_urls == urls and settings.proxy_api_url == urls[0]
    one = load(environ={}, overrides={"proxy_api_url": "http://proxy-api:8001"})
    assert one.proxy_api_urls == ["http://proxy-api:8001"]


def test_every_row_has_a_type_coerce_checks_and_help() -> None:
    for row in SETTINGS:
        assert row.type in (str, int, float, bool, list, dict), row.name
        assert row.help, row.name


def test_loaded_lists_are_not_shared() -> None:
    first, second = load(environ={}), load(environ={})
    assert first.spawner_cmd == second.spawner_cmd
    assert first.spawner_cmd is not second.spawner_cmd


def test_db_url_derives_from_data_dir(settings_dir: Path) -> None:
    settings = load(environ={}, overrides={"data_dir": str(settings_dir)})
    assert settings.db_url == f"sqlite:///{settings_dir.resolve()}/flaskhub.sqlite"


def test_relative_data_dir_is_made_absolute(cwd: Path) -> None:
    settings = load(environ={}, overrides={"data_dir": "somewhere"})
    assert settings.data_dir == str(cwd.resolve() / "somewhere")


def test_configured_db_url_is_kept(settings_dir: Path) -> None:
    url = "postgresql+psycopg://hub@127.0.0.1/hub"
    settings = load(environ={}, overrides={"data_dir": str(settings_dir), "db_url": url})
    assert settings.db_url == url


@pytest.mark.parametrize(
    ("environ", "overrides", "expected"),
    [
        ({"CONFIGPROXY_AUTH_TOKEN": "from-chp-env"}, {}, "from-chp-env"),
        ({"CONFIGPROXY_AUTH_TOKEN": "from-chp-env"}, {"proxy_auth_token": "set"}, "set"),
        ({}, {}, ""),
    ],
    ids=["CONFIGPROXY_AUTH_TOKEN", "setting wins", "unset"],
)
def test_proxy_auth_token(environ: dict[str, str], overrides: dict, expected: str) -> None:
    assert load(environ=environ, overrides=overrides).proxy_auth_token == expected


# -- sources ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text", "name", "expected"),
    [
        ("FLASKHUB_ADMIN_USERS", '["ada", "bob"]', "admin_users", ["ada", "bob"]),
        ("FLASKHUB_HEADERS", '{"X-Frame-Options": "deny"}', "headers", {"X-Frame-Options": "deny"}),
        ("FLASKHUB_PROXY_AUTO_START", "false", "proxy_auto_start", False),
        ("FLASKHUB_IMPLICIT_SPAWN", "true", "implicit_spawn", True),
        ("FLASKHUB_IMPLICIT_SPAWN", "False", "implicit_spawn", False),
        ("FLASKHUB_PROXY_AUTO_START", "0", "proxy_auto_start", False),
        ("FLASKHUB_CLEANUP_SERVERS", "1", "cleanup_servers", True),
        ("FLASKHUB_PORT", "9000", "port", 9000),
        ("FLASKHUB_START_TIMEOUT", "5", "start_timeout", 5.0),
        ("FLASKHUB_SLOW_SPAWN_TIMEOUT", "2.5", "slow_spawn_timeout", 2.5),
        # String settings keep the text, even when it would parse as JSON.
        ("FLASKHUB_DUMMY_PASSWORD", "123", "dummy_password", "123"),
        ("FLASKHUB_DUMMY_PASSWORD", "true", "dummy_password", "true"),
        ("FLASKHUB_LOG_LEVEL", "debug", "log_level", "debug"),
    ],
)
def test_env_values_parse_as_json_where_they_parse(
    variable: str, text: str, name: str, expected: Any
) -> None:
    value = getattr(load(environ={variable: text}), name)
    assert value == expected
    assert type(value) is type(expected)


def test_toml_file_from_argument(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "hub.toml", {"port": 8100, "admin_users": ["ada"]})
    settings = load(config_file=str(path), environ={})
    assert (settings.port, settings.admin_users) == (8100, ["ada"])


def test_toml_file_from_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "hub.toml", {"port": 8100})
    assert load(environ={"FLASKHUB_CONFIG_FILE": str(path)}).port == 8100


def test_toml_file_in_working_directory_is_read(cwd: Path) -> None:
    write_toml(cwd / "flaskhub.toml", {"port": 8100})
    assert load(environ={}).port == 8100


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_named_toml_file_must_exist(tmp_path: Path, how: str) -> None:
    missing = str(tmp_path / "nowhere.toml")
    kwargs: dict[str, Any] = (
        {"config_file": missing, "environ": {}}
        if how == "argument"
        else {"environ": {"FLASKHUB_CONFIG_FILE": missing}}
    )
    with pytest.raises(ConfigError, match="nowhere.toml does not exist"):
        load(**kwargs)


def test_invalid_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("port = = 8000\n")
    with pytest.raises(ConfigError, match="hub.toml is not valid TOML"):
        load(config_file=str(path), environ={})


@pytest.mark.parametrize(
    ("toml", "env", "overrides", "expected"),
    [
        ({}, {}, {}, 8000),
        ({"port": 8100}, {}, {}, 8100),
        ({"port": 8100}, {"FLASKHUB_PORT": "8200"}, {}, 8200),
        ({}, {"FLASKHUB_PORT": "8200"}, {"port": 8300}, 8300),
        ({"port": 8100}, {"FLASKHUB_PORT": "8200"}, {"port": 8300}, 8300),
        ({"port": 8100}, {}, {"port": 8300}, 8300),
    ],
    ids=["default", "toml", "env over toml", "overrides over env", "all", "overrides over toml"],
)
def test_later_source_wins(
    tmp_path: Path, toml: dict, env: dict[str, str], overrides: dict, expected: int
) -> None:
    path = write_toml(tmp_path / "hub.toml", toml)
    assert load(config_file=str(path), environ=env, overrides=overrides).port == expected


@pytest.mark.parametrize("source", ["env", "toml", "overrides"])
def test_unknown_key_is_named(tmp_path: Path, source: str) -> None:
    kwargs: dict[str, Any] = {"environ": {}}
    if source == "env":
        kwargs["environ"] = {"FLASKHUB_NO_SUCH_THING": "1"}
    elif source == "toml":
        kwargs["config_file"] = str(write_toml(tmp_path / "hub.toml", {"no_such_thing": 1}))
    else:
        kwargs["overrides"] = {"no_such_thing": 1}
    with pytest.raises(ConfigError, match="(?i)no_such_thing"):
        load(**kwargs)


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("port", "abc"),
        ("port", 70000),
        ("port", 0),
        ("hub_port", 65536),
        ("workers", 0),
        ("spawner_cmd", []),
        ("spawner_cmd", ["python", 3]),
        ("spawner_cmd", "flaskhub singleuser"),
        ("system_user_template", "flaskhub-user"),
        ("system_user_template", "{user}"),
        ("system_user_template", "{username}-{0}"),
        ("system_user_template", "{username"),
        ("services", [{"name": "culler"}]),
        ("services", ["culler"]),
        ("services", [{"name": "culler", "api_token": 1234}]),
        ("services", [{"name": "culler", "api_token": "t", "admin": "false"}]),
        ("services", [{"name": "culler", "api_token": "t", "command": "python -m culler"}]),
        ("services", [{"name": "culler", "api_token": "t", "command": [""]}]),
        ("services", [{"name": "cull/er", "api_token": "t"}]),
        ("services", [{"name": "culler", "api_token": "t", "oauth_client_id": "culler"}]),
        ("services", [{"name": "culler", "api_token": "t", "environment": {"A": 1}}]),
        ("services", [{"name": "culler", "api_token": "t", "oauth_client_allowed_scopes": ["x"]}]),
        ("services", [{"name": "culler", "api_token": "t", "colour": "red"}]),
        ("services", [{"name": "a", "api_token": "t"}, {"name": "a", "api_token": "u"}]),
        ("headers", {"X-Frame-Options": 1}),
        ("headers", "X-Frame-Options: deny"),
        ("headers", {"X-Frame-Options": "deny\r\nSet-Cookie: x=y"}),
        ("authenticator", "kerberos"),
        ("admin_users", [1]),
        ("proxy_auto_start", "maybe"),
        ("proxy_auto_start", 1),
        ("proxy_api_url", "proxy-api:8001"),
        ("proxy_api_urls", ["http://a:8001", 5]),
        ("proxy_api_urls", ["http://a:port"]),
        # Several proxies, but the hub starts one (proxy_auto_start is on).
        ("proxy_api_urls", ["http://a:8001", "http://b:8001"]),
        ("proxy_api_every_address", True),
        ("drain_seconds", -1),
        ("start_timeout", -1),
        ("http_timeout", -0.5),
        ("slow_spawn_timeout", "-1"),
        ("poll_interval", -30),
        ("concurrent_spawn_limit", -1),
        ("spawn_options", {"name": "image"}),
        ("spawn_options", [{"name": "image", "choices": []}]),
        ("spawn_options", [{"name": "image", "choices": ["a", 1]}]),
        ("spawn_options", [{"name": "image", "choices": ["a"], "default": "b"}]),
        ("spawn_options", [{"name": "", "choices": ["a"]}]),
        ("spawn_options", [{"name": "x", "choices": ["a"]}, {"name": "x", "choices": ["a"]}]),
        ("spawn_options", [{"name": "x", "choices": ["a"], "help": "?"}]),
        # Named like a setting: only one a server may choose, with good values of it.
        ("spawn_options", [{"name": "data_dir", "choices": ["/tmp"]}]),
        ("spawn_options", [{"name": "cpu_limit", "choices": ["1", "lots"]}]),
    ],
)
def test_bad_value_is_named(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"'{name}'"):
        load(environ={}, overrides={name: value})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="FLASKHUB_PORT"):
        load(environ={"FLASKHUB_PORT": "abc"})


@pytest.mark.parametrize(
    ("variable", "value", "example"),
    [
        ("FLASKHUB_ADMIN_USERS", "alice", '["alice", "bob"]'),
        ("FLASKHUB_HEADERS", "X-Frame-Options=deny", '{"name": "value"}'),
    ],
)
def test_a_list_or_table_not_in_json_says_how_to_write_it(
    variable: str, value: str, example: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(environ={variable: value})
    assert str(raised.value).endswith(f"got {value!r} (written as JSON, such as {example})")


def test_bad_toml_value_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "hub.toml", {"workers": "many"})
    with pytest.raises(ConfigError, match="'workers'"):
        load(config_file=str(path), environ={})


# -- secrets and the data dir -------------------------------------------------


def test_resolve_secrets_creates_private_files_once(settings_dir: Path) -> None:
    settings = load(environ={}, overrides={"data_dir": str(settings_dir)})
    first = resolve_secrets(settings)
    for name in ("cookie_secret", "proxy_auth_token"):
        path = settings_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == getattr(first, name)
        assert len(getattr(first, name)) == 64
    assert first.cookie_secret != first.proxy_auth_token

    again = resolve_secrets(load(environ={}, overrides={"data_dir": str(settings_dir)}))
    assert (again.cookie_secret, again.proxy_auth_token) == (
        first.cookie_secret,
        first.proxy_auth_token,
    )


def test_configured_secrets_are_used_and_not_stored(settings_dir: Path) -> None:
    settings = load(
        environ={"CONFIGPROXY_AUTH_TOKEN": "chp-token"},
        overrides={"data_dir": str(settings_dir), "cookie_secret": "configured"},
    )
    resolved = resolve_secrets(settings)
    assert (resolved.cookie_secret, resolved.proxy_auth_token) == ("configured", "chp-token")
    assert not (settings_dir / "cookie_secret").exists()
    assert not (settings_dir / "proxy_auth_token").exists()


def test_a_managed_service_without_a_token_gets_one_stable_per_secret_and_name(
    settings_dir: Path,
) -> None:
    services = [
        {"name": "culler", "command": ["culler"]},
        {"name": "other", "command": ["other"]},
        {"name": "given", "api_token": "its-own", "command": ["given"]},
    ]

    def tokens(secret: str) -> list[str]:
        overrides = {"data_dir": str(settings_dir), "services": services}
        settings = load(environ={"FLASKHUB_COOKIE_SECRET": secret}, overrides=overrides)
        return [s["api_token"] for s in resolve_secrets(settings).services]

    culler, other, given = tokens("secret-one")
    assert re.fullmatch(r"[0-9a-f]{32}", culler) and culler != other and given == "its-own"
    assert tokens("secret-one") == [culler, other, given]
    assert tokens("secret-two")[0] != culler
    assert "culler" not in {p.name for p in settings_dir.iterdir()}


def test_check_data_dir_creates_it_for_the_hub_alone(settings_dir: Path) -> None:
    check_data_dir(load(environ={}, overrides={"data_dir": str(settings_dir / "deeper")}))
    assert (settings_dir / "deeper").is_dir()
    assert list((settings_dir / "deeper").iterdir()) == []
    assert (settings_dir / "deeper").stat().st_mode & 0o777 == 0o700


def test_an_open_data_dir_is_closed(settings_dir: Path) -> None:
    open_dir = settings_dir / "open"
    open_dir.mkdir(parents=True)
    open_dir.chmod(0o755)
    check_data_dir(load(environ={}, overrides={"data_dir": str(open_dir)}))
    assert open_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("name", ["cookie_secret", "proxy_auth_token"])
def test_a_secret_others_can_read_stops_start_up(settings_dir: Path, name: str) -> None:
    settings = load(environ={}, overrides={"data_dir": str(settings_dir)})
    resolved = resolve_secrets(settings)  # creates both, 0600
    for secret in ("cookie_secret", "proxy_auth_token"):
        assert (settings_dir / secret).stat().st_mode & 0o777 == 0o600
    (settings_dir / name).chmod(0o644)
    with pytest.raises(ConfigError, match=rf"{name} can be read by other users: run `chmod 600 "):
        resolve_secrets(settings)
    (settings_dir / name).chmod(0o600)
    assert resolve_secrets(settings) == resolved


def _start_like_a_worker(data_dir: str, ready: Any, out: Any) -> None:
    """What each worker does as it starts: check data_dir, then read or make the secrets."""
    settings = load(environ={}, overrides={"data_dir": data_dir})
    ready.wait()
    try:
        resolved = [resolve_secrets(settings) for _ in range(40)]
        out.put({(r.cookie_secret, r.proxy_auth_token) for r in resolved})
    except Exception as e:  # reported to the test, which shows it
        out.put(repr(e))


@pytest.mark.process
def test_workers_starting_together_all_start_with_the_same_secrets(tmp_path: Path) -> None:
    # gunicorn starts its workers at once, and each checks data_dir and reads the secrets:
    # a probe file shared by all, or a secret file read before it is written, made a
    # worker fail to boot now and then.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = 6
    for attempt in range(5):
        data_dir = str(tmp_path / f"data{attempt}")
        ready, out = context.Barrier(workers), context.Queue()
        started = [
            context.Process(target=_start_like_a_worker, args=(data_dir, ready, out))
            for _ in range(workers)
        ]
        for process in started:
            process.start()
        results = [out.get(timeout=60) for _ in started]
        for process in started:
            process.join(timeout=60)
        assert all(isinstance(result, set) for result in results), results
        seen = set().union(*results)
        assert len(seen) == 1, seen
        ((cookie_secret, proxy_token),) = seen
        assert len(cookie_secret) == len(proxy_token) == 64
        assert sorted(p.name for p in Path(data_dir).iterdir()) == [
            "cookie_secret",
            "proxy_auth_token",
        ]


def test_unusable_data_dir_says_what_to_do(tmp_path: Path) -> None:
    # Root ignores permission bits, so use a path whose parent is a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = load(environ={}, overrides={"data_dir": str(blocker / "data")})
    with pytest.raises(ConfigError, match="a-file/data is not writable.*FLASKHUB_DATA_DIR"):
        check_data_dir(settings)
    with pytest.raises(ConfigError, match="not writable"):
        resolve_secrets(settings)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/hub", "postgresql+psycopg://u:p@db:5432/hub"),
        ("postgres://u@db/hub", "postgresql+psycopg://u@db/hub"),
        ("postgresql+psycopg://u@db/hub", "postgresql+psycopg://u@db/hub"),
        ("sqlite:////srv/hub.sqlite", "sqlite:////srv/hub.sqlite"),
    ],
)
def test_postgresql_urls_use_psycopg_3(given: str, used: str) -> None:
    assert load(environ={}, overrides={"db_url": given}).db_url == used


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        ({}, "http://127.0.0.1:8081"),
        ({"hub_ip": "0.0.0.0", "hub_port": 9000}, "http://127.0.0.1:9000"),
        ({"hub_ip": "0.0.0.0", "hub_connect_ip": "hub"}, "http://hub:8081"),
        ({"hub_connect_ip": "fd00::5"}, "http://[fd00::5]:8081"),
    ],
)
def test_hub_connect_url_is_where_the_proxy_and_servers_reach_the_hub(
    overrides: dict[str, Any], url: str
) -> None:
    assert load(environ={}, overrides=overrides).hub_connect_url == url


def test_a_blocking_postgresql_driver_is_refused() -> None:
    with pytest.raises(ConfigError, match="db_url.*psycopg2.*postgresql\\+psycopg://"):
        load(environ={}, overrides={"db_url": "postgresql+psycopg2://u@db/hub"})


def test_the_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` | `{s.env}` |" not in readme]
    assert missing == []


def test_the_readme_authentication_examples_load(clean_env: Path) -> None:
    """Each TOML example of the README's Authentication section is a hub that starts."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Authentication\n", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert len(examples) == 4
    for number, example in enumerate(examples):
        path = clean_env / f"example-{number}.toml"
        path.write_text(example)
        assert load(config_file=str(path), environ={}).authenticator in ("oidc", "oauth2", "ldap")


def test_a_secret_setting_comes_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    # As Docker secrets give them: one line, in a file under /run/secrets.
    (tmp_path / "cookie").write_text("s3cret-from-a-file\n")
    (tmp_path / "token").write_text("proxy-token")
    settings = load(
        environ={
            "FLASKHUB_COOKIE_SECRET_FILE": str(tmp_path / "cookie"),
            "FLASKHUB_PROXY_AUTH_TOKEN_FILE": str(tmp_path / "token"),
        }
    )
    assert settings.cookie_secret == "s3cret-from-a-file"
    assert settings.proxy_auth_token == "proxy-token"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        # Only secrets come from files; a setting that is no secret stays unknown so.
        ("FLASKHUB_HUB_PORT_FILE", "unknown setting FLASKHUB_HUB_PORT_FILE"),
        ("FLASKHUB_COOKIE_SECRET_FILE", "FLASKHUB_COOKIE_SECRET_FILE: cannot read the secret"),
    ],
)
def test_a_secret_file_that_cannot_be_used_stops_start_up(
    tmp_path: Path, variable: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(environ={variable: str(tmp_path / "missing")})
