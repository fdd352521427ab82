"""The checks of settings that their types alone cannot make: ranges, choices, names,
the items of lists and dicts, and settings that only make sense together.

validate(settings) raises ConfigError naming the setting and what it must be.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from app.config.table import (
    ATTACH_SERVICE,
    AUTHENTICATOR_NAMES,
    BY_NAME,
    DOCKER_NAME_RE,
    MAX_NICE,
    MAX_SWARM_PREFIX,
    PROVIDER_AUTHENTICATORS,
    SERVER_SETTINGS,
    SERVER_SUBNET_PREFIX,
    SERVICE_NAME_RE,
    ConfigError,
    Settings,
    coerce,
)
from app.crypt import parse_keys
from app.forwarded import parse_networks
from app.names import normalize_username
from app.outcomes import Invalid
from app.role_specs import check_role_specs
from app.scopes import ScopeError, check_scopes
from app.services.specs import SpecError, spec_from

METRIC_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# An LDAP attribute's name (RFC 4512 descr).
LDAP_ATTRIBUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
MEM_LIMIT_RE = re.compile(r"[0-9]+[bkmg]?", re.IGNORECASE)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SWARM_ADDRESSES = ("docker_gwbridge", "network", "published")


def _validate_template(template: str) -> None:
    """system_user_template must name the user, with no other field."""
    try:
        filled = template.format(username="x")
    except (KeyError, IndexError, ValueError):
        filled = ""
    if "{username}" not in template or not filled:
        raise ConfigError(
            "setting 'system_user_template' must contain {username} and no other {field}, "
            f"got {template!r}"
        )


def _spawn_options_problem(declared: object) -> str | None:
    """Why a `spawn_options` value cannot be used, or None when it can."""
    if not isinstance(declared, list):
        return "must be a list of fields"
    names: set[str] = set()
    for field in declared:
        if (
            not isinstance(field, dict)
            or not isinstance(field.get("name"), str)
            or not field["name"]
        ):
            return 'each field needs a "name" (a non-empty string)'
        name, choices = field["name"], field.get("choices")
        if name in names:
            return f"field {name!r} is declared twice"
        names.add(name)
        if not isinstance(field.get("label", ""), str):
            return f"the label of {name!r} must be a string"
        if (
            not choices
            or not isinstance(choices, list)
            or not all(isinstance(c, str) for c in choices)
        ):
            return f"the choices of {name!r} must be a non-empty list of strings"
        if "default" in field and field["default"] not in choices:
            return f"the default of {name!r} must be one of its choices"
        if set(field) - {"name", "label", "choices", "default"}:
            return f"field {name!r} may have only name, label, choices and default"
    return None


def _validate_option_settings(declared: list[dict[str, Any]]) -> None:
    """A spawn option named like a setting must be one a server may choose, and each of
    its choices a good value of it."""
    for option in declared:
        name = option["name"]
        if name not in BY_NAME:
            continue
        if name not in SERVER_SETTINGS:
            raise ConfigError(
                f"setting 'spawn_options': {name!r} is a setting no server may choose "
                f"(those that may: {', '.join(SERVER_SETTINGS)})"
            )
        for choice in option["choices"]:
            try:
                coerce(BY_NAME[name], choice)
            except ConfigError as e:
                raise ConfigError(f"setting 'spawn_options': choice {choice!r}: {e}") from None


def validate(settings: Settings) -> None:
    """Check what coerce cannot: ranges, choices, the items of lists and dicts."""
    _validate_nice(settings)
    if settings.authenticator not in AUTHENTICATOR_NAMES:
        raise ConfigError(
            f"setting 'authenticator' must be one of {', '.join(AUTHENTICATOR_NAMES)}"
        )
    _validate_access(settings)
    if settings.crypt_key:
        try:
            parse_keys(settings.crypt_key)
        except ValueError as e:
            raise ConfigError(f"setting 'crypt_key' (FLASKHUB_CRYPT_KEY): {e}") from None
    if settings.authenticator == "ldap":
        _validate_ldap(settings)
    if settings.authenticator == "oidc":
        _validate_oauth(settings, "oauth_issuer")
    if settings.authenticator == "oauth2":
        _validate_oauth(settings, "oauth_authorize_url", "oauth_token_url", "oauth_userinfo_url")
    for name in ("port", "hub_port", "proxy_api_port"):
        port = getattr(settings, name)
        if not 0 < port < 65536:
            raise ConfigError(f"setting {name!r} must be a port number, got {port}")
    if not 0 <= settings.swarm_proxy_port < 65536:
        raise ConfigError(
            f"setting 'swarm_proxy_port' must be a port number (0: port), "
            f"got {settings.swarm_proxy_port}"
        )
    if settings.workers < 1:
        raise ConfigError("setting 'workers' must be at least 1")
    cmd = settings.spawner_cmd
    if not cmd or not all(isinstance(a, str) for a in cmd):
        raise ConfigError("setting 'spawner_cmd' must be a non-empty list of strings")
    _validate_template(settings.system_user_template)
    problem = _spawn_options_problem(settings.spawn_options)
    if problem:
        raise ConfigError(f"setting 'spawn_options': {problem}")
    _validate_option_settings(settings.spawn_options)
    _validate_services(settings.services)
    _validate_roles(settings)
    for name, value in settings.headers.items():
        if not isinstance(value, str):
            raise ConfigError(f"setting 'headers': value of {name!r} must be a string")
        if "\n" in name + value or "\r" in name + value:
            # Werkzeug refuses them at response time: every response would be a 500.
            raise ConfigError(f"setting 'headers': {name!r} must not contain line breaks")
    if not all(isinstance(name, str) for name in settings.system_users_allowed):
        raise ConfigError("setting 'system_users_allowed' must be a list of account names")
    if not METRIC_NAME_RE.fullmatch(settings.metrics_prefix):
        raise ConfigError(
            "setting 'metrics_prefix' must be letters, digits and _, not first a digit"
        )
    if settings.drain_seconds < 0:
        raise ConfigError("setting 'drain_seconds' must be 0 or more")
    if settings.cookie_max_age_days <= 0:
        raise ConfigError("setting 'cookie_max_age_days' must be more than 0")
    if settings.max_body_size < 1024:
        raise ConfigError(
            f"setting 'max_body_size' must be at least 1024 bytes, got {settings.max_body_size}"
        )
    buckets = settings.spawn_duration_buckets
    numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
    if not buckets or not numbers or buckets[0] <= 0 or buckets != sorted(set(buckets)):
        raise ConfigError(
            f"setting 'spawn_duration_buckets' must be ascending positive numbers, got {buckets!r}"
        )
    _validate_docker(settings)
    _validate_proxy_api(settings)
    _validate_origin(
        "subdomain_host",
        settings.subdomain_host,
        "the hub's origin, such as https://hub.example.org or http://localhost:8000",
    )
    _validate_origin(
        "server_hub_url",
        settings.server_hub_url,
        "an origin user servers reach the hub at, such as http://proxy:8000",
    )
    _validate_trusted_proxies(settings.trusted_proxies)


def _validate_proxy_api(settings: Settings) -> None:
    """The proxy API URLs are http(s) URLs with a host; several only when CHP is external."""
    urls = settings.proxy_api_urls or ([settings.proxy_api_url] if settings.proxy_api_url else [])
    name = "proxy_api_urls" if settings.proxy_api_urls else "proxy_api_url"
    for url in urls:
        try:
            parts = urlsplit(url)
            _ = parts.port  # a port that is not a number raises here
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except (TypeError, AttributeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(
                f"setting {name!r}: {url!r} is not an http(s) URL of CHP's API, such as "
                "http://127.0.0.1:8001"
            )
    several = len(urls) > 1 or settings.proxy_api_every_address
    if several and settings.proxy_auto_start:
        which = "proxy_api_urls" if len(urls) > 1 else "proxy_api_every_address"
        raise ConfigError(
            f"setting {which!r} names several proxies, but the hub starts one itself: set "
            "proxy_auto_start = false and run CHP on each machine"
        )


def _validate_origin(name: str, value: str, examples: str) -> None:
    """An http(s) origin: scheme, host and maybe a port, no path."""
    if not value:
        return
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        parts = parts._replace(scheme="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"setting {name!r} must be {examples}, got {value!r}")


def _validate_trusted_proxies(values: list[Any]) -> None:
    """Each an address or a network (CIDR)."""
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            parse_networks([value])
        except ValueError:
            raise ConfigError(
                f"setting 'trusted_proxies': {value!r} is not an address or network, such as "
                "10.0.0.5 or 10.0.0.0/24"
            ) from None


def _validate_access(settings: Settings) -> None:
    """The lists of who may log in; a provider's hub must say who may (else nobody could)."""
    for name in ("allowed_users", "blocked_users", "allowed_groups", "admin_groups"):
        if not all(isinstance(v, str) and v.strip() for v in getattr(settings, name)):
            raise ConfigError(f"setting {name!r} must be a list of non-empty strings")
    for name in ("allowed_users", "blocked_users", "admin_users"):
        _validate_usernames(name, getattr(settings, name))
    allows = settings.allow_all or settings.allowed_users or settings.allowed_groups
    if settings.authenticator in PROVIDER_AUTHENTICATORS and not allows:
        raise ConfigError(
            f"with authenticator {settings.authenticator!r} nobody may log in: set "
            "'allowed_users' or 'allowed_groups', or 'allow_all' = true to let in everyone "
            "the provider accepts"
        )


def _validate_usernames(setting: str, names: list[str]) -> None:
    """Each name must be one the normalisation takes: a look-alike would never match."""
    for name in names:
        try:
            normalize_username(name)
        except Invalid as e:
            raise ConfigError(f"setting {setting!r}: {e.message}") from None


def _validate_ldap(settings: Settings) -> None:
    """An LDAP URL that keeps passwords off the wire, and one way to find the user's DN."""
    scheme, _, rest = settings.ldap_url.partition("://")
    host = rest.split("/")[0].rpartition("@")[2].rsplit(":", 1)[0].strip("[]")
    if scheme not in ("ldap", "ldaps") or not host:
        raise ConfigError("setting 'ldap_url' must be ldaps://host[:port] or ldap://host[:port]")
    if scheme == "ldap" and not settings.ldap_start_tls and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            "setting 'ldap_start_tls' may be false only for a server on loopback: passwords "
            f"would cross the network in clear to {host}; use ldaps:// or StartTLS"
        )
    templates = settings.ldap_bind_dn_template
    if bool(templates) == bool(settings.ldap_search_base):
        raise ConfigError(
            "set one of 'ldap_bind_dn_template' (direct bind) or 'ldap_search_base' "
            "(search-then-bind)"
        )
    for template in templates:
        if not isinstance(template, str) or "{username}" not in template:
            raise ConfigError("each of 'ldap_bind_dn_template' must contain {username}")
        _check_fields("ldap_bind_dn_template", template, "username")
        _check_dn_template(template)
    if not LDAP_ATTRIBUTE_RE.fullmatch(settings.ldap_username_attribute):
        raise ConfigError(
            "setting 'ldap_username_attribute' must be an attribute name such as uid or "
            f"sAMAccountName, got {settings.ldap_username_attribute!r}"
        )
    _check_fields("ldap_search_filter", settings.ldap_search_filter, "username")
    _check_fields("ldap_group_search_filter", settings.ldap_group_search_filter, "username", "dn")


def _check_dn_template(template: str) -> None:
    """A template must make a DN: the hub reads the bound entry's own name there (a bind
    name such as {username}@example.org names no entry)."""
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    try:
        parse_dn(template.format(username="x"))
    except LDAPInvalidDnError:
        raise ConfigError(
            f"each of 'ldap_bind_dn_template' must be a DN such as uid={{username}},ou=people,"
            f"dc=example,dc=org, not {template!r}: the hub reads the bound entry's own name "
            "(ldap_username_attribute). For user@domain bind names, use search-then-bind "
            "(ldap_search_base)."
        ) from None


def _validate_oauth(settings: Settings, *urls: str) -> None:
    """The provider's URLs (https), the client's credentials, the claims."""
    for name in urls:
        if not getattr(settings, name).startswith("https://"):
            raise ConfigError(f"setting {name!r} must be an https:// URL of the provider")
    for name in ("oauth_client_id", "oauth_client_secret", "username_claim"):
        if not getattr(settings, name):
            raise ConfigError(
                f"setting {name!r} must be set for authenticator {settings.authenticator!r}"
            )
    if not all(isinstance(s, str) and s for s in settings.oauth_scopes):
        raise ConfigError("setting 'oauth_scopes' must be a list of scope names")
    if settings.authenticator == "oidc" and "openid" not in settings.oauth_scopes:
        raise ConfigError("setting 'oauth_scopes' must contain 'openid' for authenticator 'oidc'")
    callback = settings.oauth_callback_url
    if callback and not callback.startswith(("https://", "http://")):
        raise ConfigError("setting 'oauth_callback_url' must be an http(s):// URL")


def _check_fields(name: str, template: str, *allowed: str) -> None:
    """A template may use only the named {fields}."""
    try:
        template.format(**dict.fromkeys(allowed, "x"))
    except (KeyError, IndexError, ValueError) as e:
        fields_ = ", ".join(f"{{{a}}}" for a in allowed)
        raise ConfigError(f"setting {name!r} may use only {fields_} ({e})") from None


def _validate_roles(settings: Settings) -> None:
    """Each `load_roles` entry: a valid name, known scopes, members of the right kinds."""
    try:
        check_role_specs(settings.load_roles, [s["name"] for s in settings.services])
    except ValueError as e:
        raise ConfigError(f"setting 'load_roles': {e}") from None


def _validate_services(services: list[dict[str, Any]]) -> None:
    """Each service: a name and a token, fields of the right types (a string such as
    "false" for `admin` would be truthy: an admin by mistake), known scopes, one each."""
    names = set()
    for service in services:
        # A managed one (with a `command`) may leave api_token out: the hub makes one.
        managed = isinstance(service, dict) and "command" in service
        required = ("name",) if managed else ("name", "api_token")
        if not isinstance(service, dict) or not all(
            isinstance(service.get(key), str) and service[key] for key in required
        ):
            raise ConfigError(
                'each of \'services\' needs {"name": ..., "api_token": ...} (a managed '
                'service, one with a "command", may leave api_token out: the hub makes one)'
            )
        try:
            spec = spec_from(service)
            check_scopes([*service.get("scopes", []), *spec.oauth_client_allowed_scopes])
        except (SpecError, ScopeError) as e:
            raise ConfigError(f"setting 'services': {e} (service {service['name']!r})") from None
        if spec.name in names:
            raise ConfigError(f"setting 'services': {spec.name!r} is there twice")
        names.add(spec.name)
        if spec.managed and not spec.command[0]:
            raise ConfigError(f"setting 'services': 'command' of {spec.name!r} is empty")


def _validate_docker(settings: Settings) -> None:
    """The docker spawner's names, mounts, environment and limits."""
    for name in ("docker_prefix", "docker_network"):
        value = getattr(settings, name)
        if value and not DOCKER_NAME_RE.fullmatch(value):
            raise ConfigError(f"setting {name!r} must be letters, digits, _ . - (got {value!r})")
    if not all(isinstance(a, str) for a in settings.docker_cmd):
        raise ConfigError("setting 'docker_cmd' must be a list of strings")
    for name in ("docker_volumes", "docker_env"):
        if not all(isinstance(v, str) for v in getattr(settings, name).values()):
            raise ConfigError(f"setting {name!r} must map names to strings")
    if not 0 < settings.docker_port < 65536:
        raise ConfigError(
            f"setting 'docker_port' must be a port number, got {settings.docker_port}"
        )
    for name in ("mem_limit", "mem_guarantee"):
        value = getattr(settings, name)
        if value and not MEM_LIMIT_RE.fullmatch(value):
            raise ConfigError(
                f"setting {name!r} must be bytes or a number with b, k, m or g, got {value!r}"
            )
    _validate_attach(settings)
    _validate_swarm(settings)


def _validate_nice(settings: Settings) -> None:
    if not 0 <= settings.server_nice <= MAX_NICE:
        raise ConfigError(
            f"setting 'server_nice' must be a nice value from 0 to {MAX_NICE}, "
            f"got {settings.server_nice}"
        )
    cgroup = settings.server_cgroup
    if cgroup and not DOCKER_NAME_RE.fullmatch(cgroup):
        raise ConfigError(
            "setting 'server_cgroup' must be one name of letters, digits, '_', '.' and '-' "
            f"(a control group beside the hub's), got {cgroup!r}"
        )


def _validate_attach(settings: Settings) -> None:
    """docker_attach's entries, the range of servers' own networks, and how servers
    reach the hub from a network the hub did not choose the address of."""
    for entry in settings.docker_attach:
        name = entry.removeprefix(ATTACH_SERVICE) if isinstance(entry, str) else ""
        if not DOCKER_NAME_RE.fullmatch(name):
            raise ConfigError(
                "setting 'docker_attach' must list container names or service:<name> "
                f"(letters, digits, _ . -), got {entry!r}"
            )
    try:
        subnets = ipaddress.IPv4Network(settings.docker_server_subnets)
    except ValueError:
        subnets = None
    if subnets is None or subnets.prefixlen > SERVER_SUBNET_PREFIX:
        raise ConfigError(
            "setting 'docker_server_subnets' must be an IPv4 network of at least "
            f"/{SERVER_SUBNET_PREFIX}, e.g. 10.213.0.0/16, got {settings.docker_server_subnets!r}"
        )
    if settings.spawner != "docker" or not settings.docker_attach:
        return
    if settings.docker_network:
        raise ConfigError(
            "settings 'docker_attach' and 'docker_network' exclude each other: with "
            "docker_attach each server has a network of its own; unset one of them"
        )
    if not settings.hub_connect_ip:
        raise ConfigError(
            "setting 'docker_attach' needs 'hub_connect_ip': the name user containers reach "
            "the hub at on their own networks, e.g. hub (the hub's compose service)"
        )


def check_swarm_prefix(prefix: str) -> None:
    """A docker_prefix that can start swarm service names, or ConfigError."""
    if not (SERVICE_NAME_RE.fullmatch(prefix) and len(prefix) <= MAX_SWARM_PREFIX):
        raise ConfigError(
            f"setting 'docker_prefix' must be at most {MAX_SWARM_PREFIX} letters and digits "
            f"joined by - or _ (swarm service names), got {prefix!r}"
        )


def _validate_swarm(settings: Settings) -> None:
    """The swarm spawner's service names, placement and addresses."""
    prefix = settings.docker_prefix
    swarm = settings.spawner == "swarm"
    if swarm and prefix:
        check_swarm_prefix(prefix)
    if not all(isinstance(c, str) and ("==" in c or "!=" in c) for c in settings.swarm_placement):
        raise ConfigError(
            "setting 'swarm_placement' must be a list of constraints such as "
            f"'node.role==worker', got {settings.swarm_placement!r}"
        )
    if settings.swarm_address not in SWARM_ADDRESSES:
        raise ConfigError(
            f"setting 'swarm_address' must be one of {', '.join(SWARM_ADDRESSES)}, "
            f"got {settings.swarm_address!r}"
        )
    if swarm and settings.swarm_address == "network" and not settings.hub_connect_ip:
        raise ConfigError(
            "setting 'hub_connect_ip' must name the hub on docker_network when "
            "swarm_address = 'network' (e.g. its service name there)"
        )
    if swarm and settings.swarm_address == "published":
        _validate_published(settings)


def _is_loopback(host: str) -> bool:
    """Whether host is a loopback name or address (127.0.1.1, Debian's host name's, too)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_HOSTS


def _validate_published(settings: Settings) -> None:
    """Servers reach the hub only through the proxy's port on their own node: a proxy
    that `flaskhub run` starts on a loopback address is out of their reach."""
    if settings.proxy_auto_start and _is_loopback(settings.ip):
        raise ConfigError(
            f"setting 'ip' is {settings.ip!r}, but with swarm_address = 'published' user "
            "servers reach the hub through the proxy's port on their node's host "
            "(host.docker.internal, the docker0 bridge's address): set ip to 0.0.0.0 or "
            "that address, and keep the port from other machines with a firewall "
            "(README: Swarm)"
        )
    if settings.docker_network:
        raise ConfigError(
            "setting 'docker_network' puts every user's server on one network, where they "
            "reach each other, which swarm_address = 'published' exists to prevent: unset "
            "it, or use swarm_address = 'network'"
        )
