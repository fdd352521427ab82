"""FlaskHub's own version (the JupyterHub API version it implements is a setting)."""

__version__ = "0.1.0"
