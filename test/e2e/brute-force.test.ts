// Brute force (DESIGN §5): wrong passwords and tokens are throttled per client address and per username
// with exponential backoff, answered 429 with Retry-After on /v2, /auth/token and /api/v1 in each one's
// error format, and audited; a valid token is never refused because of someone else's guesses. The
// server trusts X-Forwarded-For here, so each test is its own client address.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';

const VICTIM = { username: 'victim', password: 'the victim password' };
const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

describe('throttled sign-in', () => {
  let server: TestManifold;
  let token: string;
  let apiToken: string;
  before(async () => {
    server = await startManifold({
      server: { trustProxy: true },
      auth: { throttle: { addressFailures: 4, usernameFailures: 3, windowSeconds: 600, baseBlockSeconds: 30, maxBlockSeconds: 120 } },
    });
    unwrap(await server.manifold.services.users.create(server.admin, { username: VICTIM.username, password: VICTIM.password }));
    token = await personalToken(server, ['read_virtual_registry']);
    apiToken = await personalToken(server, ['api']);
  });
  after(() => server?.stop());

  const from = (address: string, headers: Record<string, string> = {}) => ({ 'x-forwarded-for': address, ...headers });
  const statuses = async (count: number, send: () => Promise<Response>) => {
    const seen: Response[] = [];
    for (let i = 0; i < count; i++) seen.push(await send());
    return seen;
  };

  it('answers 429 with Retry-After and an OCI body on /v2 after a few wrong passwords from one address', async () => {
    const answers = await statuses(7, () => fetch(`${server.url}/v2/`, { headers: from('192.0.2.1', { authorization: basic(`guess${Math.random()}`, 'wrong password') }) }));
    const codes = answers.map((response) => response.status);
    // 4 free attempts, the 5th goes on and blocks the address; every later one is refused unchecked.
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429]);
    const refused = answers[6];
    assert.equal(refused.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${refused.headers.get('retry-after')}`);
    assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0].code, 'TOOMANYREQUESTS');
    // A valid token from the same address still works: nobody's guesses slow it down.
    const valid = await fetch(`${server.url}/v2/`, { headers: from('192.0.2.1', { authorization: basic('token', token) }) });
    assert.equal(valid.status, 200);
  });

  it('answers 429 on /auth/token (GET and POST) and 429 problem+json on /api/v1 for a blocked address', async () => {
    for (let i = 0; i < 5; i++) await fetch(`${server.url}/auth/token?service=manifold`, { headers: from('192.0.2.2', { authorization: basic(`guess${i}`, 'wrong') }) });
    const get = await fetch(`${server.url}/auth/token?service=manifold`, { headers: from('192.0.2.2', { authorization: basic('someone', 'wrong') }) });
    assert.equal(get.status, 429);
    assert.ok(Number(get.headers.get('retry-after')) >= 1);
    assert.equal(((await get.json()) as { errors: { code: string }[] }).errors[0].code, 'TOOMANYREQUESTS');
    const post = await fetch(`${server.url}/auth/token`, {
      method: 'POST', headers: from('192.0.2.2', { 'content-type': 'application/x-www-form-urlencoded' }),
      body: new URLSearchParams({ grant_type: 'password', username: 'someone', password: 'wrong', service: 'manifold' }),
    });
    assert.equal(post.status, 429);
    const api = await fetch(`${server.url}/api/v1/user`, { headers: from('192.0.2.2', { authorization: basic('someone', 'wrong') }) });
    assert.equal(api.status, 429);
    assert.match(String(api.headers.get('content-type')), /^application\/problem\+json/);
    assert.ok(Number(api.headers.get('retry-after')) >= 1);
    assert.equal(((await api.json()) as { status: number }).status, 429);
    // A valid API token from the same address is answered.
    const valid = await fetch(`${server.url}/api/v1/user`, { headers: from('192.0.2.2', { authorization: `Bearer ${apiToken}` }) });
    assert.equal(valid.status, 200);
  });

  it('throttles wrong tokens per address too, and blocks a username guessed from many addresses', async () => {
    const tokens = await statuses(6, () => fetch(`${server.url}/v2/`, { headers: from('192.0.2.3', { authorization: basic('token', 'mfpat_not-a-real-token') }) }));
    assert.deepEqual(tokens.map((response) => response.status), [401, 401, 401, 401, 401, 429]);
    // 3 free failures for the victim's username, from 4 different addresses; then even the right
    // password is refused for a while (the backoff protects the account, tokens keep working).
    for (let i = 0; i < 4; i++) {
      const guess = await fetch(`${server.url}/v2/`, { headers: from(`198.51.100.${i + 1}`, { authorization: basic(VICTIM.username, `guess ${i}`) }) });
      assert.equal(guess.status, 401);
    }
    const right = await fetch(`${server.url}/v2/`, { headers: from('203.0.113.9', { authorization: basic(VICTIM.username, VICTIM.password) }) });
    assert.equal(right.status, 429);
  });

  it('records each block as an instance audit event, without the password', async () => {
    const events = await fetch(`${server.url}/api/v1/audit_events?per_page=100`, { headers: { authorization: `Bearer ${apiToken}` } });
    assert.equal(events.status, 200);
    const list = (await events.json()) as { action: string; target_type: string; details: Record<string, unknown> }[];
    const blocks = list.filter((event) => event.action === 'sign_in.block');
    assert.ok(blocks.some((event) => event.target_type === 'address' && event.details.address === '192.0.2.1'), JSON.stringify(blocks));
    assert.ok(blocks.some((event) => event.target_type === 'username' && event.details.username === VICTIM.username), JSON.stringify(blocks));
    assert.doesNotMatch(JSON.stringify(list), /wrong|guess \d|the victim password/);
  });
});
