import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../src/log.ts';

function capture(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({ write(chunk, _encoding, done) { chunks.push(String(chunk)); done(); } });
  const logger = createLogger('info', destination);
  return { logger, lines: () => chunks.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>) };
}

test('secrets are censored by key at the top level and two levels down, in any case, and the logged object is left as it was', () => {
  const { logger, lines } = capture();
  const upstream = { url: 'https://registry.example', Password: 'hunter2', auth: { token: 'tok-1', user: 'bob' } };
  logger.info({ upstream, authorization: 'Bearer abc', list: [{ secret: 's3' }], count: 3 }, 'line');
  const [line] = lines();
  assert.deepEqual(line.upstream, { url: 'https://registry.example', Password: '[redacted]', auth: { token: '[redacted]', user: 'bob' } });
  assert.equal(line.authorization, '[redacted]');
  assert.deepEqual(line.list, [{ secret: '[redacted]' }]);
  assert.equal(line.count, 3);
  assert.equal(upstream.Password, 'hunter2');
  assert.equal(upstream.auth.token, 'tok-1');
  assert.doesNotMatch(JSON.stringify(lines()), /hunter2|tok-1|Bearer abc|s3"/);
});

test('an error with a secret keeps its message and stack; a line without secrets is written as it is', () => {
  const { logger, lines } = capture();
  const error = Object.assign(new Error('upstream refused'), { config: { headers: { accept: '*/*' }, password: 'pw-9' } });
  logger.error({ err: error }, 'failed');
  logger.info({ method: 'GET', url: '/v2/a/b/manifests/latest', status: 200 }, 'request');
  const [failed, request] = lines();
  const err = failed.err as Record<string, unknown>;
  assert.equal(err.message, 'upstream refused');
  assert.match(String(err.stack), /upstream refused/);
  assert.deepEqual(err.config, { headers: { accept: '*/*' }, password: '[redacted]' });
  assert.equal(error.config.password, 'pw-9');
  assert.deepEqual({ method: request.method, url: request.url, status: request.status, msg: request.msg }, { method: 'GET', url: '/v2/a/b/manifests/latest', status: 200, msg: 'request' });
});
