// The OpenID provider the tests log in against: the npm package oidc-provider, configured
// from the environment by tests/oidc_server.py.
//
//   PORT, TLS_CERT, TLS_KEY   where it listens (https://127.0.0.1:PORT) and its certificate
//   JWKS                      {"keys": [private JWK, ...]}: the keys that sign id tokens
//   CLIENT                    the one client: {client_id, client_secret, redirect_uris, ...}
//   ACCOUNTS                  {login: {claims}}: who may sign in (any password, the
//                             provider's development login form)
//
// Test hook, only to inject faults: GET /_test/fault?kind=KIND arms one fault, used once:
//   tamper   the next id token the token endpoint hands out gets other claims (its
//            signature then no longer matches)
//   nonce    the next id token is signed again, with the provider's own key, for another
//            nonce (a valid signature on a token minted for some other login)
//   drop     the next token request gets its connection closed, no answer (a provider
//            that went down at the worst moment)
// and GET /_test/groups?account=ID&groups=a,b changes an account's groups, as the
// provider's administrators would (the userinfo endpoint says so from then on).
import https from 'node:https';
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};
const port = Number(env('PORT'));
const accounts = JSON.parse(env('ACCOUNTS'));
const client = JSON.parse(env('CLIENT'));
const issuer = `https://127.0.0.1:${port}`;
const jwks = JSON.parse(env('JWKS'));
const scopes = ['openid', 'profile', 'email', 'groups', 'offline_access'];

const provider = new Provider(issuer, {
  clients: [client],
  jwks,
  cookies: { keys: ['test cookie key, not a secret'] },
  scopes,
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  // The claims of the scopes go into the id token too, not only to userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  // Refresh tokens whenever the client may use them (auth state refresh), without the
  // consent prompt the offline_access scope would otherwise need.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
  // A first-party client: no consent screen, every scope granted.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(scopes.join(' '));
    await grant.save();
    return grant;
  },
});

let fault = '';
provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/groups') {
    const account = accounts[ctx.query.account];
    account.groups = (ctx.query.groups || '').split(',').filter(Boolean);
    ctx.body = account;
    return;
  }
  if (ctx.path === '/_test/fault') {
    fault = ctx.query.kind || '';
    ctx.body = { fault };
    return;
  }
  if (ctx.path === '/token' && fault === 'drop') {
    fault = '';
    ctx.req.socket.destroy();
    return;
  }
  await next();
  if (ctx.path === '/token' && fault === 'tamper' && ctx.body?.id_token) {
    const [header, payload, signature] = ctx.body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url'));
    claims.preferred_username = 'mallory';
    claims.groups = ['ops'];
    const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
    ctx.body = { ...ctx.body, id_token: [header, forged, signature].join('.') };
    fault = '';
  }
  if (ctx.path === '/token' && fault === 'nonce' && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, { nonce: 'another-login' }) };
    fault = '';
  }
});

// The same token with some claims changed, signed again with the key its header names.
function resign(token, changes) {
  const [header, payload] = token.split('.');
  const { kid, alg } = JSON.parse(Buffer.from(header, 'base64url'));
  if (alg !== 'RS256') throw new Error(`resign: ${alg} is not RS256`);
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url')), ...changes };
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const key = createPrivateKey({ key: jwks.keys.find((k) => k.kid === kid), format: 'jwk' });
  return `${body}.${sign('sha256', Buffer.from(body), key).toString('base64url')}`;
}

const tls = { cert: readFileSync(env('TLS_CERT')), key: readFileSync(env('TLS_KEY')) };
https.createServer(tls, provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
