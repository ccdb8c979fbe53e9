// The pool's error listeners against a PostgreSQL that ends a connection at the worst moment: the
// server's goodbye (57P01, what pg_terminate_backend sends) arrives in the same TCP packet as the end of
// the connection's start-up. pg then emits 'error' before the caller of pool.connect() runs again;
// without a listener already on the new client that event ends the process (seen once under load in
// test/e2e/database-outage.test.ts). A fake server on loopback sends exactly that packet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { GuardedPool } from '../../src/db/postgres-pool.ts';
import { isDatabaseUnavailable } from '../../src/db/unavailable.ts';

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const authenticationOk = message('R', Buffer.from([0, 0, 0, 0]));
const readyForQuery = message('Z', Buffer.from('I', 'latin1'));
const terminated = message('E', Buffer.concat([
  ...[['S', 'FATAL'], ['V', 'FATAL'], ['C', '57P01'], ['M', 'terminating connection due to administrator command']]
    .map(([field, value]) => Buffer.from(`${field}${value}\0`, 'utf8')),
  Buffer.from([0]),
]));

/** Answers every start-up with "ready" and, in the same write, the server's goodbye. */
async function goodbyeServer(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.end(Buffer.concat([authenticationOk, readyForQuery, terminated]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `postgres://manifold@127.0.0.1:${port}/manifold`,
    connections: () => connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('a connection ended in the packet that completes its start-up is a failed query, not a crash', async () => {
  const server = await goodbyeServer();
  const warnings: string[] = [];
  const pool = new GuardedPool({
    url: server.url, poolSize: 2, connectTimeoutMs: 2_000, statementTimeoutMs: 0,
    logger: { warn: (_fields: unknown, text?: string) => void warnings.push(String(text)), info: () => undefined, error: () => undefined },
  });
  try {
    const client = await pool.connect();
    await assert.rejects(client.query('select 1'), (error) => isDatabaseUnavailable(error), 'the query fails as unavailable');
    client.release();
    assert.equal(server.connections(), 1);
    assert.ok(warnings.length > 0, 'the failed connection is logged');
    assert.equal(pool.available, false, 'the pool knows the database is away');
  } finally {
    await pool.end();
    await server.close();
  }
});
