"""Spawn options: the declared fields of the `spawn_options` setting, and the
`user_options` a person's choices make (JupyterHub's options form, declared).

Each field is ``{"name", "label", "choices", "default"}``; a value is valid only
if it is one of the field's choices, and a field left out takes its default.
A field named like one of SERVER_SETTINGS (`docker_image`, `mem_limit`, …) sets
that setting for the server started with it: the image or the memory a person
picks, among the choices the operator declared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.config import BY_NAME, SERVER_SETTINGS, Settings, coerce
from app.outcomes import Invalid, shown

# Options nobody declared are stored and shown as sent (JupyterHub hands them to the
# spawner): a few, and small, or every listing of servers carries them.
MAX_UNDECLARED_OPTIONS = 16
MAX_UNDECLARED_BYTES = 4096


@dataclass(frozen=True)
class OptionField:
    """One declared field of the spawn form."""

    name: str
    label: str
    choices: tuple[str, ...]
    default: str


def option_fields(declared: list[dict[str, Any]]) -> list[OptionField]:
    """The fields of a (validated) `spawn_options` setting."""
    return [
        OptionField(
            name=field["name"],
            label=field.get("label") or field["name"],
            choices=tuple(field["choices"]),
            default=field.get("default") or field["choices"][0],
        )
        for field in declared
    ]


def chosen_options(fields: list[OptionField], values: Mapping[str, str]) -> dict[str, str]:
    """The user_options for the submitted values; Invalid names a field whose value is
    not one of its choices."""
    options = {}
    for field in fields:
        value = values.get(field.name, field.default)
        if value not in field.choices:
            raise Invalid(
                f"Spawn option {field.name!r} ({field.label}): {shown(value)} is not one of "
                f"{', '.join(field.choices)}."
            )
        options[field.name] = value
    return options


def checked_options(fields: list[OptionField], options: object) -> dict[str, Any]:
    """user_options from any source (the form or the API): each declared field checked
    against its choices (its default when left out); other keys kept as sent, as
    JupyterHub passes them to the spawner, if few and small (else Invalid)."""
    if not isinstance(options, Mapping):
        raise Invalid("Send the spawn options as a JSON object ({name: value}).")
    declared = {f.name for f in fields}
    _check_undeclared({k: v for k, v in options.items() if k not in declared})
    return {**options, **chosen_options(fields, options)}


def _check_undeclared(extra: dict[str, Any]) -> None:
    if len(extra) > MAX_UNDECLARED_OPTIONS:
        raise Invalid(
            f"At most {MAX_UNDECLARED_OPTIONS} spawn options besides those the hub declares "
            f"may be sent; these are {len(extra)}."
        )
    size = len(json.dumps(extra).encode())
    if size > MAX_UNDECLARED_BYTES:
        raise Invalid(
            f"Spawn options besides those the hub declares may take at most "
            f"{MAX_UNDECLARED_BYTES} bytes (as JSON); these take {size} bytes."
        )


def settings_for(settings: Settings, options: Mapping[str, Any]) -> Settings:
    """The settings a server runs with: its declared options named like a setting set it."""
    names = {f.name for f in option_fields(settings.spawn_options)} & set(SERVER_SETTINGS)
    changes = {n: coerce(BY_NAME[n], options[n]) for n in names if n in options}
    return replace(settings, **changes) if changes else settings
