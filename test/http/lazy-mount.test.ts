import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { buildApp, buildShell } from '../../src/http/app.ts';
import { lazyMount } from '../../src/http/lazy-mount.ts';

function logged() {
  const chunks: string[] = [];
  const logger = createLogger('info', new Writable({ write(chunk, _encoding, done) { chunks.push(String(chunk)); done(); } }));
  const lines = () => chunks.join('').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines };
}

async function mountedServer(options: { failFirstBuild?: boolean } = {}) {
  const { logger, lines } = logged();
  const metrics = createMetrics({ defaultMetrics: false });
  const app = buildApp({ logger, metrics, trustProxy: false, health: { database: async () => true, storage: async () => true } });
  const events = { builds: 0, closed: 0 };
  lazyMount(app, '/api/v1', async () => {
    events.builds += 1;
    // Slow enough that requests arriving together all wait for this one build.
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (options.failFirstBuild && events.builds === 1) throw new Error('could not build');
    const { app: inner } = buildShell({ logger, metrics, trustProxy: false });
    inner.post('/api/v1/echo', async (request) => ({ got: request.body, id: request.id }));
    inner.get('/api/v1', async () => ({ root: true }));
    inner.addHook('onClose', async () => {
      events.closed += 1;
    });
    return inner;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return { app, url, events, lines, metrics };
}

test('the mounted application is built by the first request under its prefix, once for requests that arrive together, and closed with the server', async () => {
  const { app, url, events, lines } = await mountedServer();
  try {
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    assert.equal((await fetch(`${url}/api/v1x`)).status, 404);
    assert.equal(events.builds, 0, 'nothing under the prefix was asked for');

    const answers = await Promise.all([1, 2, 3].map((n) => fetch(`${url}/api/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': `echo-${n}` },
      body: JSON.stringify({ n }),
    })));
    assert.deepEqual(await Promise.all(answers.map((answer) => answer.json())), [1, 2, 3].map((n) => ({ got: { n }, id: `echo-${n}` })));
    assert.equal(events.builds, 1);
    assert.deepEqual(await (await fetch(`${url}/api/v1`)).json(), { root: true });

    // The mounted application's own answers for what it does not route, in problem+json.
    const unrouted = await fetch(`${url}/api/v1/nothing`);
    assert.equal(unrouted.status, 404);
    assert.match(String(unrouted.headers.get('content-type')), /^application\/problem\+json/);
    assert.equal(events.builds, 1);
  } finally {
    await app.close();
  }
  assert.equal(events.closed, 1);
  // One line per request, written by the application that answered it.
  const requests = lines().filter((line) => line.msg === 'request').map((line) => `${line.status} ${line.url}`);
  assert.deepEqual(requests.filter((line) => line.includes('/api/v1')).sort(), ['200 /api/v1', '200 /api/v1/echo', '200 /api/v1/echo', '200 /api/v1/echo', '404 /api/v1/nothing', '404 /api/v1x'].sort());
});

test('requests under the prefix are counted once, by the route that answered them', async () => {
  const { app, url, metrics } = await mountedServer();
  try {
    for (const n of [1, 2]) assert.equal((await fetch(`${url}/api/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) })).status, 200);
  } finally {
    await app.close();
  }
  const counted = (await metrics.httpRequests.get()).values.filter((value) => String(value.labels.route).startsWith('/api/v1'));
  assert.deepEqual(counted.map((value) => ({ route: value.labels.route, status: value.labels.status, value: value.value })), [{ route: '/api/v1/echo', status: '200', value: 2 }]);
});

test('a build that fails answers 500 in problem+json and is tried again by the next request', async () => {
  const { app, url, events } = await mountedServer({ failFirstBuild: true });
  try {
    const failed = await fetch(`${url}/api/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(failed.status, 500);
    assert.match(String(failed.headers.get('content-type')), /^application\/problem\+json/);
    assert.equal(((await failed.json()) as { detail: string }).detail, 'internal error');
    const next = await fetch(`${url}/api/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"again":true}' });
    assert.equal(next.status, 200);
    assert.deepEqual(((await next.json()) as { got: unknown }).got, { again: true });
    assert.equal(events.builds, 2);
  } finally {
    await app.close();
  }
});
