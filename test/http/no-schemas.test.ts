import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/log.ts';
import { buildShell } from '../../src/http/app.ts';

const logger = createLogger('silent');

test('the registry application compiles no JSON schemas: a route that declares one stops the start, saying why', async () => {
  const { app } = buildShell({ logger, trustProxy: false });
  app.get('/checked', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } } }, async () => 'ok');
  await assert.rejects(async () => { await app.ready(); }, /compiles no JSON schemas/);
  await app.close().catch(() => {});
});

test('the management API application validates requests against its schemas', async () => {
  const { app } = buildShell({ logger, trustProxy: false, schemas: true });
  app.get('/checked', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } }, async () => 'ok');
  try {
    assert.equal((await app.inject({ url: '/checked?n=3' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/checked?n=three' })).statusCode, 400);
  } finally {
    await app.close();
  }
});
