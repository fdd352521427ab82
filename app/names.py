"""Usernames: the one normal form of a name, the same at every entry.

Plain Python with no imports from the hub beyond its outcomes, so that the
settings' checks can use it as well as the domain (app.users re-exports it).
"""

from __future__ import annotations

import re
import unicodedata

from app.outcomes import Invalid, shown

# A name becomes part of file names, accounts and URLs: 128 bytes of UTF-8 at most
# (128 ASCII characters), so that every spawner can use it.
USERNAME_MAX_BYTES = 128
USERNAME_RE = re.compile(r"[^\W_][\w.@+-]*")
# Spaces a person may type around a name (a form, the CLI): dropped. Any other space
# is refused (a provider's claim is checked before: app.auth.providers.redirect).
TYPED_SPACES = " \t"


def normalize_username(name: str) -> str:
    """The one form of a username, used at every entry (API, form, CLI, providers,
    settings): spaces typed around it dropped, lower-cased, then validated; raise
    Invalid saying why not.

    A name that NFKC normalisation would change (fullwidth or mathematical letters,
    ligatures, the Kelvin sign, no-break or ideographic spaces) is refused, never
    merged with the plain name it looks like. Case is folded with lower(), not
    casefold(): casefold also turns ß into ss, which would merge two names.
    """
    if not isinstance(name, str):
        raise Invalid("A username must be a string.")
    bare = name.strip(TYPED_SPACES)
    normal = bare.lower()
    if not _nfkc_stable(bare) or not _nfkc_stable(normal):
        raise Invalid(
            f"Invalid username {shown(name)}: it has characters that only look like "
            "ordinary ones (fullwidth or mathematical letters, ligatures, signs such as "
            "the Kelvin sign, unusual spaces). Type it in ordinary letters."
        )
    if not USERNAME_RE.fullmatch(normal) or len(normal.encode()) > USERNAME_MAX_BYTES:
        raise Invalid(
            f"Invalid username {shown(name)}: use letters, digits and . _ - @ +, starting "
            f"with a letter or digit, at most {USERNAME_MAX_BYTES} bytes."
        )
    return normal


def _nfkc_stable(text: str) -> bool:
    return unicodedata.normalize("NFKC", text) == text
