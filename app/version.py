"""FlaskHub's own version, and the JupyterHub version whose REST API and single-user
protocol it implements (the default of the `api_version` setting)."""

__version__ = "0.1.0"
# jupyterhub-singleuser warns of redirect loops when the hub's major version differs from
# its own: 6.x servers (what `pip install jupyterhub` gives) expect a 6.x hub.
JUPYTERHUB_API_VERSION = "6.1.1"
