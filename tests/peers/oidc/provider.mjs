#!/usr/bin/env node
// jitgate's OIDC peer: a real, certified OpenID Provider (npm `oidc-provider` 9.13.3) with a
// small in-memory configuration, for jitgate's integration and browser tests and `make demo`.
//
// Install (once; idempotent): scripts/install-oidc-peer.sh   (node_modules go to the cache)
// Start:  node tests/peers/oidc/provider.mjs --port 0 [--host 127.0.0.1]
//           [--redirect-uri URI]... [--post-logout-redirect-uri URI]... [--clients FILE]
//           [--accounts FILE] [--id-token-ttl SECONDS] [--require-consent]
//           [--exit-on-stdin-eof] [--verbose]
// Prints exactly one line on stdout, `READY http://127.0.0.1:PORT`, once it listens; that URL
// is the issuer (no trailing slash). Logs go to stderr (quiet unless --verbose or
// OIDC_PEER_VERBOSE=1; server errors are always logged). SIGTERM/SIGINT: clean exit 0.
// --exit-on-stdin-eof: exit when stdin closes (spawn with a piped stdin and keep it open, so
// the peer dies with the test process even on SIGKILL).
//
// Endpoints (oidc-provider defaults): discovery /.well-known/openid-configuration,
// authorization /auth, token /token, userinfo /me, JWKS /jwks, logout /session/end.
//
// Accounts (in memory; any password, even empty, is accepted; the login may be the name or
// the email, case-insensitive):
//   login   sub          groups                       name
//   alice   sub-alice    ["developers"]               Alice Example
//   bob     sub-bob      ["sre"]                      Bob Example
//   carol   sub-carol    ["sre", "jitgate-admins"]    Carol Example
//   dave    sub-dave     ["developers"]               Dave Example
//   erin    sub-erin     ["contractors"]              Erin Example
// each with email NAME@example.com, email_verified true, preferred_username NAME,
// given_name/family_name. `--accounts FILE` adds or replaces accounts:
//   {"frank": {"groups": ["sre"], "name": "Frank Example"}}  (sub defaults to sub-frank).
// POST /_peer/accounts changes one between sign-ins ({"login", and any of email,
// email_verified, name, preferred_username, groups}) or deletes it ({"deleted": true}).
// An UNKNOWN login is refused: the login POST ends the interaction with access_denied, so the
// browser lands on the client's redirect_uri with
//   ?error=access_denied&error_description=unknown+user+NAME&state=...&iss=...
//
// Scopes and claims: openid (sub), email (email, email_verified), profile (name,
// preferred_username, given_name, family_name), groups (groups: array of strings). With
// conformIdTokenClaims off, the claims of the granted scopes are in the ID token AND userinfo.
//
// Clients (static). Default, unless --clients FILE (JSON array of client metadata) or env
// OIDC_CLIENTS (same JSON) replace them:
//   jitgate      confidential web client, secret "jitgate-secret", client_secret_basic,
//                grants authorization_code and refresh_token (a refresh token with every
//                code exchange),
//                redirect_uris ["http://127.0.0.1:8080/auth/callback",
//                "http://localhost:8080/auth/callback"] plus every --redirect-uri,
//                post_logout_redirect_uris ["http://127.0.0.1:8080/", "http://localhost:8080/"]
//                plus every --post-logout-redirect-uri. Exact match, as in production.
//   jitgate-cli  public native client (token_endpoint_auth_method none), redirect_uri
//                "http://127.0.0.1/callback": any port is accepted on a loopback redirect URI
//                of a native client (RFC 8252 7.3; oidc-provider strips the port when the
//                host is localhost/127.0.0.1/[::1], the host and path must still match).
// --redirect-uri / --post-logout-redirect-uri go to the first non-native client ("jitgate").
// PKCE (S256 only, oidc-provider 9 has no "plain") is REQUIRED for every client.
//
// Consent: granted automatically (loadExistingGrant issues/extends a grant with every requested
// scope and claim, and the native-client consent check is dropped), so after the login POST the
// browser goes straight back to the client. With --require-consent (or an explicit
// prompt=consent in the authorization request) the consent page is shown and must be POSTed.
//
// Driving a sign-in without a browser (e.g. reqwest with a cookie store, redirects OFF):
//   1. GET {issuer}/auth?client_id=jitgate&response_type=code&scope=openid%20email%20profile%20groups
//        &redirect_uri=...&state=S&nonce=N&code_challenge=C&code_challenge_method=S256
//      -> 303, Location: /interaction/{uid} (relative), Set-Cookie: _interaction={uid};
//         path=/interaction/{uid} and _interaction_resume={uid}; path=/auth/{uid}
//         (httponly, samesite=lax, no `secure` over http).
//   2. (optional) GET {issuer}/interaction/{uid} -> 200, the HTML login form:
//        <form action="{issuer}/interaction/{uid}" method="post"> (absolute action) with
//        fields prompt=login (hidden), login, password
//   3. POST {issuer}/interaction/{uid}, Content-Type application/x-www-form-urlencoded,
//        body prompt=login&login=alice&password=any, with cookie _interaction
//      -> 303, Location: {issuer}/auth/{uid} (absolute), empty body
//      (unknown login: the same 303, and step 4 ends at REDIRECT_URI?error=access_denied...)
//   4. GET {issuer}/auth/{uid} with cookie _interaction_resume
//      -> 303, Location: REDIRECT_URI?code=...&state=S&iss={issuer, urlencoded} (RFC 9207
//         `iss` is always added), and Set-Cookie: _session=...; path=/ (single sign-on: a later
//         /auth with this cookie skips the login; use a fresh cookie jar or prompt=login).
//      If consent is required instead: 303 to /interaction/{uid2} (new _interaction and
//      _interaction_resume cookies); GET it (form with hidden prompt=consent), POST
//      /interaction/{uid2} with body prompt=consent -> 303 {issuer}/auth/{uid2}; GET it ->
//      303 to REDIRECT_URI?code=...
//      Logging in as ANOTHER user while a _session is live (prompt=login): step 4 answers
//      200 with a self-submitting (JS) form `<form method="post" action="{issuer}/session/
//      end/confirm">` holding hidden xsrf and logout=yes; POST those two fields, then follow
//      the 303s (back to /auth/{uid}, then the redirect_uri). Simpler: one cookie jar per user.
//   5. POST {issuer}/token, Authorization: Basic base64(jitgate:jitgate-secret),
//        grant_type=authorization_code&code=...&redirect_uri=...&code_verifier=...
//      -> 200 {access_token, expires_in: 3600, id_token, scope, token_type: "Bearer"}
//      (client_secret_post is refused for "jitgate": only its registered method is allowed)
//   6. GET {issuer}/me with Authorization: Bearer ACCESS_TOKEN -> 200 userinfo JSON.
// Robust loop: follow 303s by hand; whenever the Location path is /interaction/{uid}, GET it,
// and POST prompt=login&login=..&password=.. if the page has name="login", else prompt=consent.
// Abort (deny) from the form: GET /interaction/{uid}/abort -> error=access_denied.
// Logout: GET /session/end?id_token_hint=..&post_logout_redirect_uri=..&client_id=..&state=..
// -> 200 confirm form (action {issuer}/session/end/confirm, hidden xsrf); POST xsrf=..&
// logout=yes -> 303 to post_logout_redirect_uri?state=..
// The built-in pages' Google-font @import is stripped (no internet; a browser would wait).
//
// Test knobs (not part of OIDC; loopback only):
//   GET  /_peer/health  -> {"ok":true}
//   POST /_peer/tamper  {"mode": M}  -> {"ok":true,"mode":M}; GET /_peer/tamper -> current mode.
//     The NEXT token endpoint response that carries an id_token (a failed exchange does not
//     count) gets a modified id_token, then the mode goes back to "none". Modes:
//       none            nothing (cancels a pending one)
//       expired         iat = now - 2h, exp = now - 1h, re-signed with the provider's own key
//       wrong_nonce     nonce = "tampered-nonce-..." (re-signed with the provider's key)
//       wrong_audience  aud = "not-jitgate" (re-signed with the provider's key)
//       wrong_issuer    iss = "http://127.0.0.1:1/not-the-issuer" (provider's key)
//       foreign_key     same claims, signed with a fresh RSA key that is NOT in the JWKS,
//                       SAME kid as the provider's key (so the verifier finds a key by kid and
//                       the signature check itself must fail)
//       unknown_kid     same claims, fresh RSA key, a kid that is not in the JWKS
//     The mode is global to this peer process: tests that tamper should own their peer.
//   POST /_peer/redirect-uris {"client_id": "jitgate", "redirect_uris": [..],
//     "post_logout_redirect_uris": [..]} -> adds URIs to a client at run time (for servers
//     that learn their port after the peer has started).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as querystring from 'node:querystring';

import { load } from './modules.mjs';

const usage = 'usage: node provider.mjs --port PORT [--host 127.0.0.1] [--redirect-uri URI]... '
  + '[--post-logout-redirect-uri URI]... [--clients FILE] [--accounts FILE] '
  + '[--id-token-ttl SECONDS] [--require-consent] [--exit-on-stdin-eof] [--verbose]';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
      clients: { type: 'string' },
      accounts: { type: 'string' },
      'id-token-ttl': { type: 'string' },
      'require-consent': { type: 'boolean', default: false },
      'exit-on-stdin-eof': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  console.error(`oidc-peer: ${err.message}\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.error(usage);
  process.exit(0);
}

function fail(msg) {
  console.error(`oidc-peer: ${msg}`);
  process.exit(2);
}

const verbose = args.verbose || process.env.OIDC_PEER_VERBOSE === '1';
const log = (...a) => { if (verbose) console.error('oidc-peer:', ...a); };

// stdout carries exactly the READY line: everything else, oidc-provider's notices included,
// goes to stderr, and its development-mode warnings only with --verbose.
const realWarn = console.warn.bind(console);
const noisy = (a) => typeof a[0] === 'string' && /^oidc-provider (WARNING|NOTICE)/.test(a[0]);
console.log = (...a) => { if (verbose || !noisy(a)) realWarn(...a); };
console.info = console.log;
console.warn = console.log;

if (args.port === undefined || !/^\d+$/.test(args.port) || Number(args.port) > 65535) {
  fail(`--port PORT (0 for a free port) is required\n${usage}`);
}
const LOOPBACK = new Map([['127.0.0.1', '127.0.0.1'], ['localhost', '127.0.0.1'], ['::1', '[::1]'], ['[::1]', '[::1]']]);
if (!LOOPBACK.has(args.host)) fail(`--host must be a loopback address (127.0.0.1, ::1, localhost), not ${args.host}`);
const bindHost = args.host === 'localhost' ? '127.0.0.1' : args.host.replace(/^\[|\]$/g, '');
let idTokenTtl;
if (args['id-token-ttl'] !== undefined) {
  idTokenTtl = Number(args['id-token-ttl']);
  if (!Number.isSafeInteger(idTokenTtl) || idTokenTtl <= 0) fail('--id-token-ttl must be a positive integer (seconds)');
}

function readJson(what, text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(`${what}: not JSON: ${err.message}`);
  }
}

// ---- accounts -------------------------------------------------------------------------
const ACCOUNTS = new Map(); // login name -> profile
function addAccount(login, spec = {}) {
  const name = login.toLowerCase();
  const cap = name.charAt(0).toUpperCase() + name.slice(1);
  ACCOUNTS.set(name, {
    sub: spec.sub ?? `sub-${name}`,
    email: spec.email ?? `${name}@example.com`,
    email_verified: spec.email_verified ?? true,
    name: spec.name ?? `${cap} Example`,
    given_name: spec.given_name ?? (spec.name ? spec.name.split(' ')[0] : cap),
    family_name: spec.family_name ?? (spec.name ? spec.name.split(' ').slice(1).join(' ') || undefined : 'Example'),
    preferred_username: spec.preferred_username ?? name,
    groups: spec.groups ?? [],
  });
}
addAccount('alice', { groups: ['developers'] });
addAccount('bob', { groups: ['sre'] });
addAccount('carol', { groups: ['sre', 'jitgate-admins'] });
addAccount('dave', { groups: ['developers'] });
addAccount('erin', { groups: ['contractors'] });
if (args.accounts) {
  const extra = readJson(args.accounts, readFileSync(args.accounts, 'utf8'));
  for (const [login, spec] of Object.entries(extra)) addAccount(login, spec);
}
const BY_SUB = new Map([...ACCOUNTS.values()].map((a) => [a.sub, a]));

function accountForLogin(login) {
  const l = String(login ?? '').trim().toLowerCase();
  return ACCOUNTS.get(l) ?? [...ACCOUNTS.values()].find((a) => a.email.toLowerCase() === l);
}

// ---- clients --------------------------------------------------------------------------
let clients;
if (args.clients) clients = readJson(args.clients, readFileSync(args.clients, 'utf8'));
else if (process.env.OIDC_CLIENTS) clients = readJson('OIDC_CLIENTS', process.env.OIDC_CLIENTS);
else {
  clients = [
    {
      client_id: 'jitgate',
      client_secret: 'jitgate-secret',
      redirect_uris: ['http://127.0.0.1:8080/auth/callback', 'http://localhost:8080/auth/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1:8080/', 'http://localhost:8080/'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'jitgate-cli',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
  ];
}
if (!Array.isArray(clients)) clients = clients?.clients;
if (!Array.isArray(clients)) fail('clients must be a JSON array of client metadata');
const webClient = clients.find((c) => c.application_type !== 'native');
if (args['redirect-uri'].length || args['post-logout-redirect-uri'].length) {
  if (!webClient) fail('--redirect-uri needs a non-native client');
  webClient.redirect_uris = [...(webClient.redirect_uris ?? []), ...args['redirect-uri']];
  webClient.post_logout_redirect_uris = [
    ...(webClient.post_logout_redirect_uris ?? []), ...args['post-logout-redirect-uri'],
  ];
}

// ---- provider -------------------------------------------------------------------------
const { default: Provider, interactionPolicy, errors } = await load('oidc-provider');
const jose = await load('jose');

async function rsaKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = kid ?? await jose.calculateJwkThumbprint(jwk);
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return { jwk, key: privateKey };
}
const signing = await rsaKey();

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), bindHost, resolve);
});
const { port } = server.address();
const hostInUrl = LOOPBACK.get(args.host);
const issuer = `http://${hostInUrl}:${port}`;

const policy = interactionPolicy.base();
if (!args['require-consent']) policy.get('consent').checks.remove('native_client_prompt');

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signing.jwk] },
  findAccount(ctx, sub) {
    const a = BY_SUB.get(sub);
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { sub: s, ...rest } = a;
        return { sub: s, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { policy },
  // A refresh token for every client allowed the grant, as Okta or Entra issue one to an
  // app set up for it (oidc-provider would otherwise want offline_access with
  // prompt=consent). Refreshing re-reads the account, so changed groups and deleted
  // accounts show at the next refresh.
  async issueRefreshToken(ctx, client) {
    return issueRefreshTokens && client.grantTypeAllowed('refresh_token');
  },
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (args['require-consent']) return grant;
    grant ??= new oidc.provider.Grant({ accountId: oidc.account.accountId, clientId: oidc.client.clientId });
    const scopes = [...oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  ...(idTokenTtl ? { ttl: { IdToken: idTokenTtl } } : {}),
});

provider.on('server_error', (ctx, err) => console.error('oidc-peer: server_error', ctx?.method, ctx?.path, err));
if (verbose) {
  for (const ev of ['authorization.error', 'grant.error', 'userinfo.error', 'end_session.error']) {
    provider.on(ev, (ctx, err) => log(ev, err.message, err.error_description ?? ''));
  }
}

// ---- test knobs and the interaction submit ----------------------------------------------
// POST /_peer/refresh-tokens {"issue": false}: later code exchanges get no refresh token,
// as from a provider (or an app set-up) that issues none.
let issueRefreshTokens = true;
const TAMPER_MODES = new Set(['none', 'expired', 'wrong_nonce', 'wrong_audience', 'wrong_issuer', 'foreign_key', 'unknown_kid', 'stale_auth_time']);
let tamper = 'none';

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let n = 0;
  for await (const chunk of req) {
    n += chunk.length;
    if (n > limit) throw Object.assign(new Error('request body too large'), { status: 413, expose: true });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function json(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'json';
  ctx.body = body;
}

async function jsonBody(ctx) {
  try {
    return JSON.parse((await readBody(ctx.req)) || '{}');
  } catch {
    return undefined;
  }
}

async function tamperIdToken(idToken, mode) {
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signing.key;
  switch (mode) {
    case 'expired':
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      if (claims.auth_time) claims.auth_time = Math.min(claims.auth_time, now - 7200);
      break;
    case 'wrong_nonce':
      claims.nonce = `tampered-nonce-${randomBytes(6).toString('hex')}`;
      break;
    case 'wrong_audience':
      claims.aud = 'not-jitgate';
      break;
    case 'wrong_issuer':
      claims.iss = 'http://127.0.0.1:1/not-the-issuer';
      break;
    // A validly signed token saying the person authenticated an hour ago: a provider
    // that ignored prompt=login / max_age=0.
    case 'stale_auth_time':
      claims.auth_time = now - 3600;
      break;
    case 'foreign_key':
      key = (await rsaKey(header.kid)).key;
      break;
    case 'unknown_kid': {
      const foreign = await rsaKey();
      key = foreign.key;
      header.kid = foreign.jwk.kid;
      break;
    }
    default:
      return idToken;
  }
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
}

provider.use(async (ctx, next) => {
  log(ctx.method, ctx.url);
  const { path, method } = ctx;

  if (path.startsWith('/_peer/')) {
    if (path === '/_peer/health' && method === 'GET') return json(ctx, 200, { ok: true });
    if (path === '/_peer/tamper' && method === 'GET') return json(ctx, 200, { mode: tamper });
    if (path === '/_peer/tamper' && method === 'POST') {
      const body = await jsonBody(ctx);
      if (!body || !TAMPER_MODES.has(body.mode)) {
        return json(ctx, 400, { ok: false, error: `mode must be one of ${[...TAMPER_MODES].join(', ')}` });
      }
      tamper = body.mode;
      log('tamper mode for the next id_token:', tamper);
      return json(ctx, 200, { ok: true, mode: tamper });
    }
    if (path === '/_peer/refresh-tokens' && method === 'POST') {
      const body = await jsonBody(ctx);
      if (typeof body?.issue !== 'boolean') return json(ctx, 400, { ok: false, error: 'issue must be true or false' });
      issueRefreshTokens = body.issue;
      return json(ctx, 200, { ok: true, issue: issueRefreshTokens });
    }
    if (path === '/_peer/accounts' && method === 'POST') {
      // Changes an account between sign-ins, as an IdP admin (or a person editing their
      // own profile) would: {"login": "alice", "groups": [...], "email_verified": false,
      // "preferred_username": "bob", ...}; {"login": "alice", "deleted": true} removes it.
      const body = await jsonBody(ctx);
      const account = body && accountForLogin(body.login);
      if (!account) return json(ctx, 400, { ok: false, error: `unknown login ${body?.login}` });
      if (body.deleted === true) {
        for (const [login, a] of ACCOUNTS) if (a === account) ACCOUNTS.delete(login);
        BY_SUB.delete(account.sub);
        log('account deleted:', account.sub);
        return json(ctx, 200, { ok: true, deleted: account.sub });
      }
      const editable = ['email', 'email_verified', 'name', 'preferred_username', 'groups'];
      const unknown = Object.keys(body).filter((k) => k !== 'login' && !editable.includes(k));
      if (unknown.length) {
        return json(ctx, 400, { ok: false, error: `cannot change ${unknown.join(', ')}; can: ${editable.join(', ')}` });
      }
      for (const key of editable) if (key in body) account[key] = body[key];
      log('account changed:', account.sub, JSON.stringify(body));
      return json(ctx, 200, { ok: true, account });
    }
    if (path === '/_peer/redirect-uris' && method === 'POST') {
      const body = await jsonBody(ctx);
      const client = body && await provider.Client.find(body.client_id ?? webClient?.client_id);
      if (!client) return json(ctx, 400, { ok: false, error: 'unknown client_id' });
      const add = (list, uris) => {
        for (const uri of uris ?? []) {
          const u = URL.parse(uri);
          if (!u || !['http:', 'https:'].includes(u.protocol) || u.hash) throw new Error(`bad URI ${uri}`);
          if (!list.includes(uri)) list.push(uri);
        }
      };
      try {
        add(client.redirectUris, body.redirect_uris);
        client.postLogoutRedirectUris ??= [];
        add(client.postLogoutRedirectUris, body.post_logout_redirect_uris);
      } catch (err) {
        return json(ctx, 400, { ok: false, error: err.message });
      }
      return json(ctx, 200, {
        ok: true, redirect_uris: client.redirectUris, post_logout_redirect_uris: client.postLogoutRedirectUris,
      });
    }
    return json(ctx, 404, { ok: false, error: 'not found' });
  }

  // The interaction form submit: like devInteractions, but logins map to the in-memory
  // accounts (unknown names are refused with access_denied).
  const submit = method === 'POST' && /^\/interaction\/[^/]+$/.test(path);
  if (submit) {
    let body;
    let details;
    try {
      if (!ctx.is('application/x-www-form-urlencoded')) {
        throw new errors.InvalidRequest('the interaction form must be application/x-www-form-urlencoded');
      }
      body = querystring.parse(await readBody(ctx.req));
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      ctx.status = err.statusCode ?? err.status ?? 400;
      ctx.type = 'text';
      ctx.body = `${err.error ?? 'error'}: ${err.error_description ?? err.message}\n`;
      return undefined;
    }
    const { prompt, params, session, grantId } = details;
    if (body.prompt !== prompt.name) {
      ctx.status = 400;
      ctx.type = 'text';
      ctx.body = `this interaction expects prompt=${prompt.name}, got prompt=${body.prompt}\n`;
      return undefined;
    }
    let result;
    let merge = false;
    if (prompt.name === 'login') {
      const account = accountForLogin(body.login);
      if (account) {
        log(`login ${body.login} -> ${account.sub}`);
        result = { login: { accountId: account.sub } };
      } else {
        log(`login refused: unknown user ${body.login}`);
        result = { error: 'access_denied', error_description: `unknown user ${body.login ?? ''}`.trim() };
      }
    } else {
      // consent, as devInteractions does it
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
      merge = true;
    }
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    return undefined;
  }

  await next();

  if (path === '/token' && method === 'POST' && tamper !== 'none'
      && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
    const mode = tamper;
    tamper = 'none';
    ctx.body = { ...ctx.body, id_token: await tamperIdToken(ctx.body.id_token, mode) };
    log('tampered id_token:', mode);
  }

  // The built-in pages load a Google font; there is no internet here and a browser would
  // wait for it.
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
  }
  return undefined;
});

server.on('request', provider.callback());

let stopping = false;
function stop(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
if (args['exit-on-stdin-eof']) {
  process.stdin.on('end', () => stop('stdin closed'));
  process.stdin.on('error', () => stop('stdin error'));
  process.stdin.resume();
}

process.stdout.write(`READY ${issuer}\n`);
