// configurable-http-proxy as FlaskHub runs it: CHP's own command line, and keep-alive
// connections to targets on a Unix socket (the hub's, app.forwarded). CHP 5.3 gives
// those targets no agent, so every request gets a connection of its own and
// `Connection: close`; a request whose answer comes before CHP has finished writing it
// then fails with EPIPE, and the browser gets a 503.
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { ConfigurableProxy } from "configurable-http-proxy";

// The API's token from a file (a Docker secret) when CONFIGPROXY_AUTH_TOKEN_FILE names
// one, as FLASKHUB_PROXY_AUTH_TOKEN_FILE gives the hub the same token.
const tokenFile = process.env.CONFIGPROXY_AUTH_TOKEN_FILE;
if (tokenFile && !process.env.CONFIGPROXY_AUTH_TOKEN) {
  process.env.CONFIGPROXY_AUTH_TOKEN = readFileSync(tokenFile, "utf8").replace(/\r?\n$/, "");
}

// The API on this container's own address in one subnet (FLASKHUB_PROXY_API_SUBNET): a
// swarm's global proxy service has a task on each node, each at an address of its own on
// the hub's network, and the API must not listen on the users' network beside it.
const apiSubnet = process.env.FLASKHUB_PROXY_API_SUBNET;
if (apiSubnet) {
  process.argv.push(`--api-ip=${addressIn(apiSubnet)}`);
}

function addressIn(cidr) {
  const [base, bits] = cidr.split("/");
  const family = net.isIPv6(base) ? "ipv6" : net.isIPv4(base) ? "ipv4" : null;
  const subnet = new net.BlockList();
  try {
    subnet.addSubnet(base, Number(bits), family);
  } catch {
    fail(`FLASKHUB_PROXY_API_SUBNET must be a subnet such as 10.212.0.0/24, not ${cidr}`);
  }
  const mine = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a.family.toLowerCase() === family && subnet.check(a.address, family));
  if (mine.length === 0) {
    fail(`FLASKHUB_PROXY_API_SUBNET=${cidr}: this container has no address in it`);
  }
  return mine[0].address;
}

function fail(message) {
  console.error(message);
  process.exit(2);
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
