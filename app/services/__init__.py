"""Services (JupyterHub's): tools that use the hub's API, may log users in through it,
may be routed at /services/<name>/ and may be started by the hub.

`specs` says what a service is and the environment a managed one gets (light:
the gunicorn arbiter imports it); `processes` starts and supervises managed
services in the arbiter; `registry` is the hub's domain service over the
`services` setting and the services created through the API.
"""
