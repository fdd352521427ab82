"""JupyterHub's handler class names for our URL rules: the `handler` label of request metrics.

JupyterHub labels `request_duration_seconds` with the dotted name of the
tornado handler that answered (`jupyterhub.apihandlers.users.UserAPIHandler`),
and the jupyterhub/grafana-dashboards queries filter on those names. The table
maps each Flask rule to the handler JupyterHub routes the same URL to (from
jupyterhub 5.4's `default_handlers` lists; the login pages of the
authenticators we follow name theirs). A rule missing from the table (one
JupyterHub has no handler for) keeps its pattern: a bounded set, never a raw path.
"""

from __future__ import annotations

from flask import Request

_API = "jupyterhub.apihandlers"
_PAGES = "jupyterhub.handlers.pages"
_BASE = "jupyterhub.handlers.base"

HANDLER_NAMES: dict[str, str] = {
    # REST API (jupyterhub/apihandlers/*.py)
    "/hub/api": f"{_API}.hub.RootAPIHandler",
    "/hub/api/": f"{_API}.hub.RootAPIHandler",
    "/hub/api/info": f"{_API}.hub.InfoAPIHandler",
    "/hub/api/shutdown": f"{_API}.hub.ShutdownAPIHandler",
    "/hub/api/proxy": f"{_API}.proxy.ProxyAPIHandler",
    "/hub/api/user": f"{_API}.users.SelfAPIHandler",
    "/hub/api/users": f"{_API}.users.UserListAPIHandler",
    "/hub/api/users/<name>": f"{_API}.users.UserAPIHandler",
    "/hub/api/users/<name>/server": f"{_API}.users.UserServerAPIHandler",
    "/hub/api/users/<name>/servers/": f"{_API}.users.UserServerAPIHandler",
    "/hub/api/users/<name>/servers/<server_name>": f"{_API}.users.UserServerAPIHandler",
    "/hub/api/users/<name>/server/progress": f"{_API}.users.SpawnProgressAPIHandler",
    "/hub/api/users/<name>/servers/<server_name>/progress": (
        f"{_API}.users.SpawnProgressAPIHandler"
    ),
    "/hub/api/users/<name>/tokens": f"{_API}.users.UserTokenListAPIHandler",
    "/hub/api/users/<name>/tokens/<token_id>": f"{_API}.users.UserTokenAPIHandler",
    "/hub/api/users/<name>/activity": f"{_API}.users.ActivityAPIHandler",
    "/hub/api/groups": f"{_API}.groups.GroupListAPIHandler",
    "/hub/api/groups/<name>": f"{_API}.groups.GroupAPIHandler",
    "/hub/api/groups/<name>/users": f"{_API}.groups.GroupUsersAPIHandler",
    "/hub/api/groups/<name>/properties": f"{_API}.groups.GroupPropertiesAPIHandler",
    "/hub/api/services": f"{_API}.services.ServiceListAPIHandler",
    "/hub/api/services/<name>": f"{_API}.services.ServiceAPIHandler",
    "/hub/api/authorizations/token": f"{_API}.auth.TokenAPIHandler",
    "/hub/api/authorizations/token/<path:token>": f"{_API}.auth.TokenAPIHandler",
    "/hub/api/oauth2/authorize": f"{_API}.auth.OAuthAuthorizeHandler",
    "/hub/api/oauth2/token": f"{_API}.auth.OAuthTokenHandler",
    "/hub/api/shares/<name>": f"{_API}.shares.ServerShareAPIHandler",
    "/hub/api/shares/<name>/": f"{_API}.shares.ServerShareAPIHandler",
    "/hub/api/shares/<name>/<server_name>": f"{_API}.shares.ServerShareAPIHandler",
    "/hub/api/share-codes/<name>": f"{_API}.shares.ServerShareCodeAPIHandler",
    "/hub/api/share-codes/<name>/": f"{_API}.shares.ServerShareCodeAPIHandler",
    "/hub/api/share-codes/<name>/<server_name>": f"{_API}.shares.ServerShareCodeAPIHandler",
    "/hub/api/users/<name>/shared": f"{_API}.shares.UserShareListAPIHandler",
    "/hub/api/users/<name>/shared/<owner>/": f"{_API}.shares.UserShareAPIHandler",
    "/hub/api/users/<name>/shared/<owner>/<server_name>": f"{_API}.shares.UserShareAPIHandler",
    "/hub/api/groups/<name>/shared": f"{_API}.shares.GroupShareListAPIHandler",
    "/hub/api/groups/<name>/shared/<owner>/": f"{_API}.shares.GroupShareAPIHandler",
    "/hub/api/groups/<name>/shared/<owner>/<server_name>": f"{_API}.shares.GroupShareAPIHandler",
    "/hub/api/health": f"{_PAGES}.HealthCheckHandler",
    "/hub/api/metrics": "jupyterhub.handlers.metrics.MetricsHandler",
    # Pages (jupyterhub/handlers/*.py)
    "/hub/metrics": "jupyterhub.handlers.metrics.MetricsHandler",
    "/hub/health": f"{_PAGES}.HealthCheckHandler",
    "/hub/": f"{_PAGES}.RootHandler",
    "/hub/home": f"{_PAGES}.HomeHandler",
    "/hub/admin": f"{_PAGES}.AdminHandler",
    "/hub/token": f"{_PAGES}.TokenPageHandler",
    "/hub/accept-share": f"{_PAGES}.AcceptShareHandler",
    "/hub/spawn": f"{_PAGES}.SpawnHandler",
    "/hub/spawn/<name>": f"{_PAGES}.SpawnHandler",
    "/hub/spawn/<name>/<server_name>": f"{_PAGES}.SpawnHandler",
    "/hub/spawn-pending/<name>": f"{_PAGES}.SpawnPendingHandler",
    "/hub/spawn-pending/<name>/<server_name>": f"{_PAGES}.SpawnPendingHandler",
    "/hub/error/<int:code>": f"{_PAGES}.ProxyErrorHandler",
    "/hub/login": "jupyterhub.handlers.login.LoginHandler",
    "/hub/logout": "jupyterhub.handlers.login.LogoutHandler",
    "/hub/static/<path:filename>": "jupyterhub.handlers.static.CacheControlStaticFilesHandler",
    "/hub/user/<path:rest>": f"{_BASE}.UserUrlHandler",
    "/hub/user-redirect/": f"{_BASE}.UserRedirectHandler",
    "/hub/user-redirect/<path:path>": f"{_BASE}.UserRedirectHandler",
    "/user/<name>": f"{_BASE}.AddSlashHandler",
    "/": f"{_BASE}.PrefixRedirectHandler",
    "/<path:path>": f"{_BASE}.PrefixRedirectHandler",
    # The login pages of the authenticators whose behaviour ours follow.
    "/hub/oauth_login": "oauthenticator.oauth2.OAuthLoginHandler",
    "/hub/oauth_callback": "oauthenticator.oauth2.OAuthCallbackHandler",
    "/hub/change-password": "nativeauthenticator.handlers.ChangePasswordHandler",
}
# What answers a URL no rule matches (404; 405 for a method no rule takes).
API_NOT_FOUND = f"{_API}.base.API404"
PAGE_NOT_FOUND = f"{_BASE}.Template404"


def handler_name(request: Request) -> str:
    """The `handler` label of a request: JupyterHub's name for its rule, else the rule."""
    rule = request.url_rule
    if rule is None:
        return API_NOT_FOUND if request.path.startswith("/hub/api/") else PAGE_NOT_FOUND
    return HANDLER_NAMES.get(rule.rule, rule.rule)
