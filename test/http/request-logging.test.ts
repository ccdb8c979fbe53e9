import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { buildApp } from '../../src/http/app.ts';

test('every request ends in one line with its id; what a handler or the error handler logs carries the same id; health checks are not logged at info', async () => {
  const chunks: string[] = [];
  const logger = createLogger('info', new Writable({ write(chunk, _encoding, done) { chunks.push(String(chunk)); done(); } }));
  const app = buildApp({ logger, trustProxy: false, health: { database: async () => true, storage: async () => true } });
  app.get('/noisy', async (request) => {
    request.log.warn({ upstream: 'hub' }, 'upstream slow');
    return { ok: true };
  });
  app.get('/quiet', async () => ({ ok: true }));
  app.get('/broken', async () => {
    throw new Error('boom');
  });
  try {
    assert.equal((await app.inject({ url: '/noisy', headers: { 'x-request-id': 'req-noisy', authorization: 'Bearer secret-1' } })).statusCode, 200);
    assert.equal((await app.inject({ url: '/quiet', headers: { 'x-request-id': 'req-quiet' } })).statusCode, 200);
    assert.equal((await app.inject({ url: '/broken', headers: { 'x-request-id': 'req-broken' } })).statusCode, 500);
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
  } finally {
    await app.close();
  }
  const lines = chunks.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const pick = (line: Record<string, unknown>) => ({ reqId: line.reqId, msg: line.msg, url: line.url, status: line.status });
  assert.deepEqual(lines.filter((line) => line.msg !== 'Server listening').map(pick), [
    { reqId: 'req-noisy', msg: 'upstream slow', url: undefined, status: undefined },
    { reqId: 'req-noisy', msg: 'request', url: '/noisy', status: 200 },
    { reqId: 'req-quiet', msg: 'request', url: '/quiet', status: 200 },
    { reqId: 'req-broken', msg: 'request failed', url: undefined, status: undefined },
    { reqId: 'req-broken', msg: 'request', url: '/broken', status: 500 },
  ]);
  assert.equal(lines[0].upstream, 'hub');
  assert.equal((lines[3].err as { message: string }).message, 'boom');
  assert.doesNotMatch(chunks.join(''), /secret-1/);
});
