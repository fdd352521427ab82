"""Encryption of auth state with cryptography's Fernet, keys from the `crypt_key` setting.

`crypt_key` (FLASKHUB_CRYPT_KEY) holds one or more keys separated by `;`, each
32 bytes written as 64 hex digits (`openssl rand -hex 32`, as JupyterHub's
JUPYTERHUB_CRYPT_KEY) or as url-safe base64 (a Fernet key). The first key
encrypts; every key decrypts, so a key is rotated by putting the new one first
and keeping the old one after it until every user has logged in again.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

KEY_BYTES = 32


class DecryptError(Exception):
    """Stored auth state that none of the keys decrypts (a key was removed)."""


def parse_keys(value: str) -> list[bytes]:
    """The raw 32-byte keys of a `crypt_key` value, or ValueError saying what is wrong."""
    keys = []
    for number, text in enumerate((k.strip() for k in value.split(";")), start=1):
        if not text:
            continue
        key = _decode(text)
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"key {number} is not 32 bytes in hex (64 digits) or base64: make one with "
                "`openssl rand -hex 32`"
            )
        keys.append(key)
    if not keys:
        raise ValueError("no key given: make one with `openssl rand -hex 32`")
    return keys


def _decode(text: str) -> bytes:
    if len(text) == 2 * KEY_BYTES:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            pass
    try:
        return base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError):
        return b""


class CryptKeeper:
    """Encrypts JSON-serialisable values with the first key, decrypts with any."""

    def __init__(self, keys: list[bytes]) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])

    @classmethod
    def from_setting(cls, value: str) -> CryptKeeper | None:
        """A keeper of the `crypt_key` setting's keys, or None when it is empty."""
        return cls(parse_keys(value)) if value else None

    def encrypt(self, data: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(data).encode())

    def decrypt(self, blob: bytes) -> Any:
        """The value, or DecryptError when no key opens it."""
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            raise DecryptError("none of the crypt_key keys decrypts it") from None
