"""FlaskHub's proxy: run configurable-http-proxy (`proxy.launcher`) and drive its REST API
(`proxy.client`). Import from those modules: the launcher runs in gunicorn's arbiter,
which must not load the client's HTTP library."""
