"""Spawn options beyond the form: checked on every path, and choosing per-server settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app.config import load
from app.servers import get_servers
from app.spawn_options import (
    MAX_UNDECLARED_BYTES,
    MAX_UNDECLARED_OPTIONS,
    checked_options,
    option_fields,
    settings_for,
)

OPTIONS = [
    {"name": "docker_image", "label": "Image", "choices": ["lab:1", "lab:2"]},
    {"name": "cpu_limit", "label": "CPUs", "choices": ["1", "2.5"], "default": "1"},
    {"name": "flavour", "label": "Flavour", "choices": ["plain", "spicy"]},
]


def test_a_declared_option_named_like_a_setting_sets_it_for_that_server() -> None:
    settings = load(environ={}, overrides={"spawn_options": OPTIONS})
    options = checked_options(option_fields(settings.spawn_options), {"docker_image": "lab:2"})
    assert options == {"docker_image": "lab:2", "cpu_limit": "1", "flavour": "plain"}
    server = settings_for(settings, options)
    assert (server.docker_image, server.cpu_limit) == ("lab:2", 1.0)
    # Nothing else changes, and an undeclared setting in the options is ignored.
    assert settings_for(settings, {**options, "mem_limit": "64g"}).mem_limit == settings.mem_limit
    assert settings_for(load(environ={}), {"docker_image": "evil"}).docker_image != "evil"


def test_the_api_refuses_a_choice_outside_the_declared_ones(
    make_app: Callable[..., Flask], make_token: Callable[..., str]
) -> None:
    app = make_app(spawn_options=OPTIONS)
    token = make_token(app, "alice")
    response = app.test_client().post(
        "/hub/api/users/alice/server",
        json={"docker_image": "someone/else:latest"},
        headers={"Authorization": f"token {token}"},
    )
    assert response.status_code == 400
    assert "Spawn option 'docker_image'" in response.json["message"]
    assert get_servers(app).get_server("alice") is None  # nothing was claimed


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # Issue 21, finding 10: undeclared options are bounded in number and size.
        ({f"k{i}": "v" for i in range(MAX_UNDECLARED_OPTIONS + 1)}, "At most"),
        ({"blob": "x" * (MAX_UNDECLARED_BYTES + 1)}, "bytes"),
        ({"nested": [[["x" * 1000] * 10] * 10]}, "bytes"),
        ({"k" * MAX_UNDECLARED_BYTES: 1}, "bytes"),
        ([1, 2], "JSON object"),
        ("options", "JSON object"),
    ],
)
def test_undeclared_options_are_bounded(
    make_app: Callable[..., Flask], make_token: Callable[..., str], body: Any, says: str
) -> None:
    app = make_app(spawn_options=OPTIONS, allow_named_servers=True)
    token = make_token(app, "alice")
    for path in ("/hub/api/users/alice/server", "/hub/api/users/alice/servers/lab"):
        response = app.test_client().post(
            path, json=body, headers={"Authorization": f"token {token}"}
        )
        assert response.status_code == 400, response.text
        assert says in response.json["message"]
    assert get_servers(app).get_server("alice") is None


def test_a_few_small_undeclared_options_are_kept() -> None:
    fields = option_fields(OPTIONS)
    options = checked_options(fields, {"profile": "gpu", "size": {"cpu": 2}})
    assert options["profile"] == "gpu" and options["size"] == {"cpu": 2}
