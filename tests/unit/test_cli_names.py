"""The CLI takes names as every entry does: in any case, look-alikes refused; and it
releases a name bound to an identity provider's account (`flaskhub user unbind`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.db import Database
from app.users import UserService


@pytest.fixture
def run(clean_env: Path, migrated_sqlite: Path) -> tuple[CliRunner, dict[str, str], UserService]:
    shutil.copyfile(migrated_sqlite, clean_env / "hub.sqlite")
    db_url = f"sqlite:///{clean_env / 'hub.sqlite'}"
    env = {"FLASKHUB_DB_URL": db_url, "FLASKHUB_DATA_DIR": str(clean_env / "data")}
    return CliRunner(), env, UserService(Database(db_url))


def invoke(run: tuple[CliRunner, dict[str, str], UserService], *args: str) -> Result:
    runner, env, _users = run
    return runner.invoke(main, list(args), env=env, input="correct horse battery\n" * 2)


def test_token_for_a_name_in_another_case_is_that_users(
    run: tuple[CliRunner, dict[str, str], UserService],
) -> None:
    assert invoke(run, "user", "add", "Alice", "--password-stdin").exit_code == 0
    result = invoke(run, "token", "ALICE")
    assert result.exit_code == 0, result.output
    assert [u.name for u in run[2].page()[0]] == ["alice"]


@pytest.mark.parametrize("name", ["ＡＬＩＣＥ", "\u212aate", "alice\u00a0", "𝐚𝐥𝐢𝐜𝐞"])
def test_a_look_alike_name_is_refused(
    run: tuple[CliRunner, dict[str, str], UserService], name: str
) -> None:
    for args in (("user", "add", name, "--password-stdin"), ("token", name)):
        result = invoke(run, *args)
        assert result.exit_code == 1
        assert "Invalid username" in result.output and "look like" in result.output
    assert run[2].count() == 0


def test_unbind_releases_the_name(run: tuple[CliRunner, dict[str, str], UserService]) -> None:
    users = run[2]
    assert invoke(run, "token", "kate").exit_code == 0
    users.bind_provider("kate", "https://id.example.org", "k-1")
    result = invoke(run, "user", "unbind", "Kate")
    assert result.exit_code == 0, result.output
    assert "no longer bound to sub k-1 of https://id.example.org" in result.output
    users.bind_provider("kate", "https://id.example.org", "k-2")  # the next login binds
    assert "no longer bound to sub k-2" in invoke(run, "user", "unbind", "kate").output
    assert "kate is bound to no account" in invoke(run, "user", "unbind", "kate").output
    nobody = invoke(run, "user", "unbind", "nobody")
    assert nobody.exit_code == 1 and "No such user: nobody" in nobody.output


def test_unbind_all_after_a_change_of_provider(
    run: tuple[CliRunner, dict[str, str], UserService],
) -> None:
    users = run[2]
    for name in ("kate", "lena", "max"):  # (the first also creates the database)
        assert invoke(run, "token", name).exit_code == 0
    users.bind_provider("kate", "https://old-id", "k")
    users.bind_provider("lena", "https://old-id", "l")
    result = invoke(run, "user", "unbind", "--all")
    assert result.exit_code == 0 and "Released 2 names" in result.output
    users.bind_provider("kate", "https://new-id", "k2")
    assert invoke(run, "user", "unbind").exit_code == 2  # neither a name nor --all
