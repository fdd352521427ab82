"""Settings as a package: the table (table.py), its checks (checks.py), and where
settings come from (loading.py). Callers import from here; the modules inside import
from each other directly, in that order, so none needs the package to be loaded."""

from app.config.checks import check_swarm_prefix, validate
from app.config.loading import (
    check_data_dir,
    current_settings,
    get_settings,
    init_app,
    load,
    persistent_secret,
    resolve_secrets,
    with_port,
)
from app.config.table import (
    ATTACH_SERVICE,
    AUTHENTICATOR_NAMES,
    BY_NAME,
    CONFIG_FILE_ENV,
    DOCKER_NAME_RE,
    ENV_PREFIX,
    MAX_NICE,
    MAX_SWARM_PREFIX,
    PROVIDER_AUTHENTICATORS,
    SERVER_SETTINGS,
    SERVER_SUBNET_PREFIX,
    SERVICE_NAME_RE,
    SETTINGS,
    ConfigError,
    Setting,
    Settings,
    coerce,
)

__all__ = [
    "ATTACH_SERVICE",
    "AUTHENTICATOR_NAMES",
    "BY_NAME",
    "CONFIG_FILE_ENV",
    "DOCKER_NAME_RE",
    "ENV_PREFIX",
    "MAX_NICE",
    "MAX_SWARM_PREFIX",
    "PROVIDER_AUTHENTICATORS",
    "SERVER_SETTINGS",
    "SERVER_SUBNET_PREFIX",
    "SERVICE_NAME_RE",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "check_data_dir",
    "check_swarm_prefix",
    "coerce",
    "current_settings",
    "get_settings",
    "init_app",
    "load",
    "persistent_secret",
    "resolve_secrets",
    "validate",
    "with_port",
]
