"""Spawners: how a user's server process is started, watched and stopped."""

from __future__ import annotations

import importlib

from app.spawners.base import Spawner, SpawnerError
from app.spawners.local import LocalProcessSpawner, SimpleLocalProcessSpawner

# Imported when chosen: the Docker SDK costs memory in every worker that never uses it.
BUILTIN: dict[str, str] = {
    "local": "app.spawners.local:LocalProcessSpawner",
    "simple": "app.spawners.local:SimpleLocalProcessSpawner",
    "docker": "app.spawners.docker:DockerSpawner",
    "swarm": "app.spawners.swarm:SwarmSpawner",
}


def spawner_class(name: str) -> type[Spawner]:
    """The class named by the `spawner` setting: a BUILTIN name or `module:Class`."""
    module_name, _, attr = BUILTIN.get(name, name).partition(":")
    if not attr:
        raise ValueError(
            f"spawner {name!r} is neither one of {', '.join(BUILTIN)} nor 'module:Class'"
        )
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Spawner)):
        raise ValueError(f"spawner {name!r} is not a Spawner subclass")
    return cls


__all__ = [
    "Spawner",
    "SpawnerError",
    "LocalProcessSpawner",
    "SimpleLocalProcessSpawner",
    "spawner_class",
]
