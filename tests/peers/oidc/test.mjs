// Tests of jitgate's OIDC peer (provider.mjs), with node's built-in runner and plain fetch:
//   scripts/install-oidc-peer.sh && node --test tests/peers/oidc/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { load } from './modules.mjs';

const jose = await load('jose');
const PROVIDER = fileURLToPath(new URL('./provider.mjs', import.meta.url));
const WEB_REDIRECT = 'http://127.0.0.1:8080/auth/callback';

// ---- helpers ---------------------------------------------------------------------------

async function startPeer(extraArgs = []) {
  const child = spawn(process.execPath, [PROVIDER, '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /^READY (\S+)\n/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`peer exited (${code}) before READY: ${stderr}`)));
  });
  const issuer = await ready;
  return {
    issuer,
    child,
    output: () => ({ stdout, stderr }),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

// A tiny cookie jar: name -> {value, path}; enough for one host.
class Jar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name};${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  names() { return [...this.cookies.values()].map((c) => c.name).sort(); }
}

async function req(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  jar?.store(res);
  return res;
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');

function pkce() {
  const verifier = b64u(randomBytes(32));
  const challenge = b64u(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

// Drives the authorization endpoint and the dev interaction forms the way a non-browser
// client would; returns the final redirect to the client (a URL) plus what it sent.
async function authorize(issuer, {
  clientId = 'jitgate', redirectUri = WEB_REDIRECT, scope = 'openid email profile groups',
  login = 'alice', password = 'any', jar = new Jar(), params = {}, steps = [],
} = {}) {
  const { verifier, challenge } = pkce();
  const state = b64u(randomBytes(8));
  const nonce = b64u(randomBytes(8));
  const url = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    client_id: clientId, response_type: 'code', scope, redirect_uri: redirectUri, state, nonce,
    code_challenge: challenge, code_challenge_method: 'S256', ...params,
  })) {
    if (v !== undefined) url.searchParams.set(k, v);
  }
  let res = await req(jar, url.href);
  for (let i = 0; i < 10; i += 1) {
    if (res.status !== 303 && res.status !== 302) {
      const body = await res.text();
      // Logging in as someone else inside a live session: oidc-provider answers with a
      // self-submitting form that ends the old session first (a browser posts it by JS).
      const m = /<form method="post" action="([^"]+\/session\/end\/confirm)">[^]*?name="xsrf" value="([^"]+)"/.exec(body);
      if (res.status === 200 && m) {
        steps.push('logout');
        res = await req(jar, m[1], { method: 'POST', form: { xsrf: m[2], logout: 'yes' } });
        continue;
      }
      return { res, body, state, nonce, verifier, jar };
    }
    const loc = new URL(res.headers.get('location'), issuer);
    if (loc.origin !== issuer) {
      return { location: loc, state, nonce, verifier, jar, code: loc.searchParams.get('code') };
    }
    if (/^\/interaction\/[^/]+$/.test(loc.pathname)) {
      const page = await (await req(jar, loc.href)).text();
      assert.doesNotMatch(page, /googleapis/, 'no external font for a browser to wait on');
      if (page.includes('name="login"')) {
        steps.push('login');
        assert.match(page, /name="prompt" value="login"/);
        assert.match(page, /name="password"/);
        res = await req(jar, loc.href, { method: 'POST', form: { prompt: 'login', login, password } });
      } else {
        steps.push('consent');
        assert.match(page, /name="prompt" value="consent"/);
        res = await req(jar, loc.href, { method: 'POST', form: { prompt: 'consent' } });
      }
    } else {
      res = await req(jar, loc.href);
    }
  }
  throw new Error('too many redirects');
}

async function exchange(issuer, code, verifier, {
  clientId = 'jitgate', secret = 'jitgate-secret', redirectUri = WEB_REDIRECT,
} = {}) {
  const form = {
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
  };
  const headers = {};
  if (secret) headers.authorization = `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
  else form.client_id = clientId;
  const res = await req(null, `${issuer}/token`, { method: 'POST', form, headers });
  return { status: res.status, body: await res.json() };
}

async function signIn(issuer, opts = {}) {
  const a = await authorize(issuer, opts);
  assert.ok(a.code, `no code: ${a.location ?? a.body}`);
  assert.equal(a.location.searchParams.get('state'), a.state);
  const t = await exchange(issuer, a.code, a.verifier, opts);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  return { ...a, tokens: t.body };
}

async function jwks(issuer) {
  return jose.createLocalJWKSet(await (await fetch(`${issuer}/jwks`)).json());
}

// Signature only (no claim checks), then the claims.
async function verifySig(issuer, idToken) {
  await jose.compactVerify(idToken, await jwks(issuer));
  return jose.decodeJwt(idToken);
}

async function tamper(issuer, mode) {
  const res = await fetch(`${issuer}/_peer/tamper`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode }),
  });
  return { status: res.status, body: await res.json() };
}

// ---- tests -------------------------------------------------------------------------------

describe('default peer', () => {
  let peer;
  before(async () => { peer = await startPeer(); });
  after(async () => { await peer?.stop(); });

  test('prints exactly READY with a loopback issuer and stays quiet', () => {
    assert.match(peer.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(peer.output().stdout, `READY ${peer.issuer}\n`);
    assert.equal(peer.output().stderr, '');
  });

  test('health and discovery', async () => {
    assert.deepEqual(await (await fetch(`${peer.issuer}/_peer/health`)).json(), { ok: true });
    const d = await (await fetch(`${peer.issuer}/.well-known/openid-configuration`)).json();
    assert.equal(d.issuer, peer.issuer);
    assert.equal(d.token_endpoint, `${peer.issuer}/token`);
    assert.equal(d.userinfo_endpoint, `${peer.issuer}/me`);
    assert.equal(d.jwks_uri, `${peer.issuer}/jwks`);
    assert.ok(d.scopes_supported.includes('groups'));
    assert.ok(d.claims_supported.includes('groups'));
    assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(d.id_token_signing_alg_values_supported, ['RS256']);
  });

  test('code + PKCE flow for jitgate: groups, email, nonce in the ID token and userinfo', async () => {
    const steps = [];
    const s = await signIn(peer.issuer, { login: 'carol', steps });
    assert.deepEqual(steps, ['login'], 'consent is granted automatically');
    assert.equal(s.location.origin + s.location.pathname, WEB_REDIRECT);
    assert.equal(s.location.searchParams.get('iss'), peer.issuer);
    assert.ok(s.jar.names().includes('_session'));
    assert.equal(s.tokens.token_type, 'Bearer');
    assert.equal(s.tokens.scope, 'openid email profile groups');

    const { payload } = await jose.jwtVerify(s.tokens.id_token, await jwks(peer.issuer), {
      issuer: peer.issuer, audience: 'jitgate', algorithms: ['RS256'],
    });
    assert.equal(payload.sub, 'sub-carol');
    assert.equal(payload.nonce, s.nonce);
    assert.equal(payload.email, 'carol@example.com');
    assert.equal(payload.email_verified, true);
    assert.equal(payload.name, 'Carol Example');
    assert.equal(payload.preferred_username, 'carol');
    assert.deepEqual(payload.groups, ['sre', 'jitgate-admins']);
    assert.equal(payload.exp - payload.iat, 3600);

    const ui = await fetch(`${peer.issuer}/me`, { headers: { authorization: `Bearer ${s.tokens.access_token}` } });
    assert.equal(ui.status, 200);
    assert.deepEqual(await ui.json(), {
      sub: 'sub-carol',
      email: 'carol@example.com',
      email_verified: true,
      name: 'Carol Example',
      preferred_username: 'carol',
      given_name: 'Carol',
      family_name: 'Example',
      groups: ['sre', 'jitgate-admins'],
    });

    // The code is single-use.
    const again = await exchange(peer.issuer, s.code, s.verifier);
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('every account, by name or email; the session cookie gives single sign-on', async () => {
    const want = {
      alice: ['developers'], bob: ['sre'], carol: ['sre', 'jitgate-admins'], dave: ['developers'], erin: ['contractors'],
    };
    for (const [name, groups] of Object.entries(want)) {
      const s = await signIn(peer.issuer, { login: name === 'erin' ? 'Erin@Example.com' : name });
      const c = await verifySig(peer.issuer, s.tokens.id_token);
      assert.equal(c.sub, `sub-${name}`);
      assert.deepEqual(c.groups, groups);
      const steps = [];
      const again = await signIn(peer.issuer, { jar: s.jar, steps, login: 'nobody' });
      assert.deepEqual(steps, [], 'no login form with a live session');
      assert.equal((await verifySig(peer.issuer, again.tokens.id_token)).sub, `sub-${name}`);
    }
  });

  test('prompt=consent shows the consent form; prompt=login asks again', async () => {
    const first = await signIn(peer.issuer, { login: 'alice' });
    const steps = [];
    await signIn(peer.issuer, { jar: first.jar, steps, params: { prompt: 'consent' } });
    assert.deepEqual(steps, ['consent']);
    const steps2 = [];
    const again = await signIn(peer.issuer, { jar: first.jar, steps: steps2, login: 'alice', params: { prompt: 'login' } });
    assert.deepEqual(steps2, ['login']);
    assert.equal((await verifySig(peer.issuer, again.tokens.id_token)).sub, 'sub-alice');
  });

  test('prompt=login as another user in a live session: logout form, then the new user', async () => {
    const first = await signIn(peer.issuer, { login: 'alice' });
    const steps = [];
    const s = await signIn(peer.issuer, { jar: first.jar, login: 'bob', steps, params: { prompt: 'login' } });
    assert.deepEqual(steps, ['login', 'logout']);
    assert.equal((await verifySig(peer.issuer, s.tokens.id_token)).sub, 'sub-bob');
  });

  test('RP-initiated logout: confirm form, then post_logout_redirect_uri', async () => {
    const s = await signIn(peer.issuer, { login: 'alice' });
    const url = new URL(`${peer.issuer}/session/end`);
    url.searchParams.set('id_token_hint', s.tokens.id_token);
    url.searchParams.set('post_logout_redirect_uri', 'http://127.0.0.1:8080/');
    url.searchParams.set('client_id', 'jitgate');
    url.searchParams.set('state', 'bye');
    const page = await req(s.jar, url.href);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.doesNotMatch(html, /googleapis/);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)[1];
    assert.equal(action, `${peer.issuer}/session/end/confirm`);
    const res = await req(s.jar, action, { method: 'POST', form: { xsrf, logout: 'yes' } });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), 'http://127.0.0.1:8080/?state=bye');
    const steps = [];
    await signIn(peer.issuer, { jar: s.jar, steps });
    assert.deepEqual(steps, ['login'], 'signed out: the login form again');
  });

  test('no groups claim without the groups scope', async () => {
    const s = await signIn(peer.issuer, { login: 'bob', scope: 'openid email' });
    const c = await verifySig(peer.issuer, s.tokens.id_token);
    assert.equal(c.groups, undefined);
    assert.equal(c.name, undefined);
    assert.equal(c.email, 'bob@example.com');
  });

  test('an unknown login is refused with access_denied at the redirect_uri', async () => {
    const a = await authorize(peer.issuer, { login: 'mallory' });
    assert.equal(a.code, null);
    assert.equal(a.location.origin + a.location.pathname, WEB_REDIRECT);
    assert.equal(a.location.searchParams.get('error'), 'access_denied');
    assert.equal(a.location.searchParams.get('error_description'), 'unknown user mallory');
    assert.equal(a.location.searchParams.get('state'), a.state);
  });

  test('PKCE is required for the confidential client, and checked', async () => {
    const a = await authorize(peer.issuer, { params: { code_challenge: undefined, code_challenge_method: undefined } });
    assert.equal(a.location.searchParams.get('error'), 'invalid_request');
    assert.match(a.location.searchParams.get('error_description'), /requires PKCE/);
    const b = await authorize(peer.issuer);
    const t = await exchange(peer.issuer, b.code, pkce().verifier);
    assert.equal(t.status, 400);
    assert.equal(t.body.error, 'invalid_grant');
  });

  test('the web client redirect_uri must match exactly; a wrong secret is refused', async () => {
    const a = await authorize(peer.issuer, { redirectUri: 'http://127.0.0.1:9999/auth/callback' });
    assert.equal(a.res?.status, 400);
    assert.match(a.body, /redirect_uri/);
    const b = await authorize(peer.issuer);
    const t = await exchange(peer.issuer, b.code, b.verifier, { secret: 'wrong' });
    assert.equal(t.status, 401);
    assert.equal(t.body.error, 'invalid_client');
  });

  test('accounts change between sign-ins, and can be deleted', async () => {
    const change = (body) => fetch(`${peer.issuer}/_peer/accounts`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    let res = await change({ login: 'erin', groups: [], email_verified: false, preferred_username: 'alice' });
    assert.equal(res.status, 200);
    const s = await signIn(peer.issuer, { login: 'erin' });
    const c = await verifySig(peer.issuer, s.tokens.id_token);
    assert.deepEqual(c.groups, []);
    assert.equal(c.email_verified, false);
    assert.equal(c.preferred_username, 'alice');
    assert.equal(c.sub, 'sub-erin', 'the subject never changes');

    res = await change({ login: 'erin', sub: 'sub-alice' });
    assert.equal(res.status, 400, 'the subject cannot be changed');
    res = await change({ login: 'nobody', groups: [] });
    assert.equal(res.status, 400);

    res = await change({ login: 'erin', deleted: true });
    assert.equal(res.status, 200);
    const ui = await fetch(`${peer.issuer}/me`, { headers: { authorization: `Bearer ${s.tokens.access_token}` } });
    assert.notEqual(ui.status, 200, 'a deleted account has no userinfo');
    const denied = await authorize(peer.issuer, { login: 'erin' });
    assert.equal(denied.code, null, 'a deleted account cannot sign in');
    assert.equal(denied.location.searchParams.get('error'), 'access_denied');
  });

  test('the web client gets a refresh token; refreshing reads the account anew', async () => {
    const s = await signIn(peer.issuer, { login: 'dave' });
    assert.ok(s.tokens.refresh_token, 'a refresh token with the code exchange');
    const refresh = async (token) => {
      const res = await fetch(`${peer.issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('jitgate:jitgate-secret').toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }),
      });
      return { status: res.status, body: await res.json() };
    };
    const change = (body) => fetch(`${peer.issuer}/_peer/accounts`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'dave', ...body }),
    });
    await change({ groups: ['sre'] });
    const r = await refresh(s.tokens.refresh_token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const ui = await fetch(`${peer.issuer}/me`, { headers: { authorization: `Bearer ${r.body.access_token}` } });
    assert.deepEqual((await ui.json()).groups, ['sre']);
    await change({ groups: ['developers'] });
  });

  test('redirect URIs can be added at run time', async () => {
    const uri = 'http://127.0.0.1:4321/auth/callback';
    const res = await fetch(`${peer.issuer}/_peer/redirect-uris`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [uri] }),
    });
    assert.equal(res.status, 200);
    assert.ok((await res.json()).redirect_uris.includes(uri));
    await signIn(peer.issuer, { redirectUri: uri });
  });

  test('native CLI client: any loopback port, public client with PKCE', async () => {
    const redirectUri = 'http://127.0.0.1:49152/callback';
    const steps = [];
    const s = await signIn(peer.issuer, {
      clientId: 'jitgate-cli', redirectUri, secret: null, login: 'dave', steps,
    });
    assert.deepEqual(steps, ['login']);
    assert.equal(s.location.origin, 'http://127.0.0.1:49152');
    const c = await verifySig(peer.issuer, s.tokens.id_token);
    assert.equal(c.aud, 'jitgate-cli');
    assert.deepEqual(c.groups, ['developers']);
    // another port works too; another host or path does not
    await signIn(peer.issuer, { clientId: 'jitgate-cli', redirectUri: 'http://127.0.0.1:1234/callback', secret: null });
    for (const bad of ['http://localhost:1234/callback', 'http://127.0.0.1:1234/other']) {
      const a = await authorize(peer.issuer, { clientId: 'jitgate-cli', redirectUri: bad });
      assert.equal(a.res?.status, 400, bad);
    }
    // PKCE is required for the public client
    const n = await authorize(peer.issuer, {
      clientId: 'jitgate-cli', redirectUri, params: { code_challenge: undefined, code_challenge_method: undefined },
    });
    assert.equal(n.location.searchParams.get('error'), 'invalid_request');
  });

  test('tamper API: bad mode is refused, GET shows the pending mode', async () => {
    assert.equal((await tamper(peer.issuer, 'bogus')).status, 400);
    assert.deepEqual((await tamper(peer.issuer, 'expired')).body, { ok: true, mode: 'expired' });
    assert.deepEqual(await (await fetch(`${peer.issuer}/_peer/tamper`)).json(), { mode: 'expired' });
    assert.deepEqual((await tamper(peer.issuer, 'none')).body, { ok: true, mode: 'none' });
    const s = await signIn(peer.issuer);
    await jose.jwtVerify(s.tokens.id_token, await jwks(peer.issuer), { issuer: peer.issuer, audience: 'jitgate' });
  });

  const now = () => Math.floor(Date.now() / 1000);
  const modes = {
    expired: async (token, c, s) => {
      assert.ok(c.exp < now() - 3000, 'exp in the past');
      assert.ok(c.iat < now() - 7000, 'iat 2 hours ago');
      assert.equal(c.nonce, s.nonce);
      await assert.rejects(
        jose.jwtVerify(token, await jwks(peer.issuer), { issuer: peer.issuer, audience: 'jitgate' }),
        { code: 'ERR_JWT_EXPIRED' },
      );
    },
    wrong_nonce: (token, c, s) => {
      assert.notEqual(c.nonce, s.nonce);
      assert.match(c.nonce, /^tampered-nonce-/);
    },
    wrong_audience: (token, c) => { assert.equal(c.aud, 'not-jitgate'); },
    wrong_issuer: (token, c) => { assert.notEqual(c.iss, peer.issuer); },
  };

  for (const [mode, check] of Object.entries(modes)) {
    test(`tamper ${mode}: the next id_token only, still signed by the provider's key`, async () => {
      await tamper(peer.issuer, mode);
      const s = await signIn(peer.issuer, { login: 'alice' });
      const c = await verifySig(peer.issuer, s.tokens.id_token);
      await check(s.tokens.id_token, c, s);
      assert.equal(c.sub, 'sub-alice');
      assert.deepEqual(c.groups, ['developers']);
      // back to normal afterwards
      const next = await signIn(peer.issuer, { login: 'alice' });
      const { payload } = await jose.jwtVerify(next.tokens.id_token, await jwks(peer.issuer), {
        issuer: peer.issuer, audience: 'jitgate',
      });
      assert.equal(payload.nonce, next.nonce);
    });
  }

  for (const mode of ['foreign_key', 'unknown_kid']) {
    test(`tamper ${mode}: the next id_token fails signature verification against the JWKS`, async () => {
      const keys = (await (await fetch(`${peer.issuer}/jwks`)).json()).keys;
      assert.equal(keys.length, 1);
      await tamper(peer.issuer, mode);
      const s = await signIn(peer.issuer, { login: 'bob' });
      const header = jose.decodeProtectedHeader(s.tokens.id_token);
      if (mode === 'foreign_key') {
        assert.equal(header.kid, keys[0].kid, 'same kid as the real key');
        await assert.rejects(verifySig(peer.issuer, s.tokens.id_token), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
      } else {
        assert.notEqual(header.kid, keys[0].kid);
        await assert.rejects(verifySig(peer.issuer, s.tokens.id_token), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
      }
      const c = jose.decodeJwt(s.tokens.id_token);
      assert.equal(c.nonce, s.nonce);
      assert.equal(c.aud, 'jitgate');
      assert.equal(c.iss, peer.issuer);
      const next = await signIn(peer.issuer, { login: 'bob' });
      await verifySig(peer.issuer, next.tokens.id_token);
    });
  }

  test('a failed token exchange does not use up the tamper mode', async () => {
    await tamper(peer.issuer, 'wrong_audience');
    const a = await authorize(peer.issuer);
    assert.equal((await exchange(peer.issuer, a.code, pkce().verifier)).status, 400);
    const s = await signIn(peer.issuer);
    assert.equal((await verifySig(peer.issuer, s.tokens.id_token)).aud, 'not-jitgate');
  });

  test('SIGTERM: clean exit 0', async () => {
    const p = await startPeer();
    assert.equal(await p.stop(), 0);
  });
});

describe('options', () => {
  test('--redirect-uri, --id-token-ttl, --require-consent', async () => {
    const uri = 'http://127.0.0.1:5555/cb';
    const peer = await startPeer(['--redirect-uri', uri, '--id-token-ttl', '60', '--require-consent']);
    try {
      const steps = [];
      const s = await signIn(peer.issuer, { redirectUri: uri, login: 'erin', steps });
      assert.deepEqual(steps, ['login', 'consent']);
      const c = await verifySig(peer.issuer, s.tokens.id_token);
      assert.equal(c.exp - c.iat, 60);
      assert.deepEqual(c.groups, ['contractors']);
      // the consent is remembered for the session
      const steps2 = [];
      await signIn(peer.issuer, { redirectUri: uri, jar: s.jar, steps: steps2 });
      assert.deepEqual(steps2, []);
      // the default redirect URIs are still there
      await signIn(peer.issuer, { login: 'erin' });
    } finally {
      await peer.stop();
    }
  });

  test('--clients FILE / OIDC_CLIENTS replace the clients; --accounts adds people', async () => {
    const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'oidc-peer-'));
    const clients = join(dir, 'clients.json');
    const accounts = join(dir, 'accounts.json');
    writeFileSync(clients, JSON.stringify([{
      client_id: 'other', client_secret: 'other-secret', redirect_uris: ['http://127.0.0.1:7000/cb'],
      grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }]));
    writeFileSync(accounts, JSON.stringify({ frank: { groups: ['sre', 'oncall'], name: 'Frank Other' } }));
    const peer = await startPeer(['--clients', clients, '--accounts', accounts]);
    try {
      const s = await signIn(peer.issuer, {
        clientId: 'other', secret: 'other-secret', redirectUri: 'http://127.0.0.1:7000/cb', login: 'frank',
      });
      const c = await verifySig(peer.issuer, s.tokens.id_token);
      assert.equal(c.sub, 'sub-frank');
      assert.equal(c.name, 'Frank Other');
      assert.equal(c.family_name, 'Other');
      assert.deepEqual(c.groups, ['sre', 'oncall']);
      const a = await authorize(peer.issuer);
      assert.equal(a.res?.status, 400, 'the default jitgate client is gone');
    } finally {
      await peer.stop();
      rmSync(dir, { recursive: true });
    }
  });

  test('refuses a non-loopback host and a missing port', async () => {
    for (const argv of [[PROVIDER, '--port', '0', '--host', '0.0.0.0'], [PROVIDER]]) {
      const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      const [code] = await once(child, 'exit');
      assert.equal(code, 2);
    }
  });

  test('--exit-on-stdin-eof: exits when stdin closes', async () => {
    const child = spawn(process.execPath, [PROVIDER, '--port', '0', '--exit-on-stdin-eof'], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((resolve) => { child.stdout.once('data', resolve); });
    const exited = once(child, 'exit');
    child.stdin.end();
    const [code] = await exited;
    assert.equal(code, 0);
  });
});
