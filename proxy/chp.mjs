// configurable-http-proxy as FlaskHub runs it: CHP's own command line, and keep-alive
// connections to targets on a Unix socket (the hub's, app.forwarded). CHP 5.3 gives
// those targets no agent, so every request gets a connection of its own and
// `Connection: close`; a request whose answer comes before CHP has finished writing it
// then fails with EPIPE, and the browser gets a 503.
import { readFileSync } from "node:fs";
import http from "node:http";
import { ConfigurableProxy } from "configurable-http-proxy";

// The API's token from a file (a Docker secret) when CONFIGPROXY_AUTH_TOKEN_FILE names
// one, as FLASKHUB_PROXY_AUTH_TOKEN_FILE gives the hub the same token.
const tokenFile = process.env.CONFIGPROXY_AUTH_TOKEN_FILE;
if (tokenFile && !process.env.CONFIGPROXY_AUTH_TOKEN) {
  process.env.CONFIGPROXY_AUTH_TOKEN = readFileSync(tokenFile, "utf8").replace(/\r?\n$/, "");
}

const unixAgent = new http.Agent({ keepAlive: true });
const proxyOptsForTarget = ConfigurableProxy.prototype.proxyOptsForTarget;
ConfigurableProxy.prototype.proxyOptsForTarget = function (target) {
  const options = proxyOptsForTarget.call(this, target);
  if (options.target.socketPath) {
    options.agent = unixAgent;
  }
  return options;
};

await import("configurable-http-proxy/bin/configurable-http-proxy");
