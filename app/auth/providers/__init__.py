"""Authenticators by name: the `authenticator` setting's table, as the spawners have.

The providers (LDAP, OpenID Connect, OAuth 2) live in this package; the built-in
dummy and password authenticators in app.auth.authenticators.
"""

from __future__ import annotations

import importlib

from app.auth.authenticators import Authenticator

# Imported when chosen: ldap3, Authlib and joserfc cost memory in every worker of a hub
# that never logs in at a provider.
BUILTIN: dict[str, str] = {
    "dummy": "app.auth.authenticators:DummyAuthenticator",
    "password": "app.auth.authenticators:PasswordAuthenticator",
    "ldap": "app.auth.providers.ldap:LDAPAuthenticator",
    "oidc": "app.auth.providers.oidc:OIDCAuthenticator",
    "oauth2": "app.auth.providers.oauth2:OAuth2Authenticator",
}


def authenticator_class(name: str) -> type[Authenticator]:
    """The class of an `authenticator` setting (one of BUILTIN: checked at start-up)."""
    module_name, _, attr = BUILTIN[name].partition(":")
    cls: type[Authenticator] = getattr(importlib.import_module(module_name), attr)
    return cls
