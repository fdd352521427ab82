"""JupyterHub's configuration in the side-by-side benchmark (loaded by `jupyterhub -f`).

benchmarks/hubs.py sets every BENCH_JH_* variable: loopback ports, an external
CHP (the repository's own), a state directory, the admin service token and the
tiny server as the spawner's command. Everything else is JupyterHub's default,
as FlaskHub runs with its own defaults.
"""

import json
import os

E = os.environ.__getitem__
RUN = E("BENCH_JH_RUN_DIR")

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

c.JupyterHub.bind_url = f"http://127.0.0.1:{E('BENCH_JH_PORT')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{E('BENCH_JH_HUB_PORT')}"
c.Spawner.ip = "127.0.0.1"

# The proxy: CHP started by the benchmark, as FlaskHub's arbiter starts its own.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.auth_token = E("CONFIGPROXY_AUTH_TOKEN")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{E('BENCH_JH_PROXY_API_PORT')}"

c.JupyterHub.db_url = f"sqlite:///{RUN}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{RUN}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{RUN}/jupyterhub.pid"
c.JupyterHub.log_level = "WARN"

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

# The benchmark's token: a service that may manage users, servers and tokens
# (FlaskHub's equivalent is a service with "admin": true).
c.JupyterHub.services = [{"name": "bench", "api_token": E("BENCH_JH_ADMIN_TOKEN")}]
c.JupyterHub.load_roles = [
    {
        "name": "bench-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "proxy", "read:hub"],
        "services": ["bench"],
    }
]

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{RUN}/homes/{{username}}"
c.Spawner.cmd = json.loads(E("BENCH_JH_SPAWNER_CMD"))
c.JupyterHub.concurrent_spawn_limit = int(E("BENCH_JH_SPAWN_LIMIT"))
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
