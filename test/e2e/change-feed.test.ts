// The change feed (src/db/change-feed.ts): local subscribers hear a publish at once; on PostgreSQL the
// other processes on the same schema hear it through LISTEN/NOTIFY within a second, and nobody else
// does; a listening connection that is cut or a database that restarts is listened to again, and the
// subscribers are told to drop everything (notifications may have been missed). On SQLite it is local.
// The PostgreSQL parts run in both CI passes (helpers/db.ts postgresUrl, a private cluster of the
// test's own for cuts and restarts), hence this file's place among the end-to-end tests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ChangeFeed } from '../../src/db/change-feed.ts';
import type { Change } from '../../src/db/change-feed.ts';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createPostgresSchema } from '../helpers/db.ts';
import type { PostgresSchema } from '../helpers/db.ts';
import { until } from '../helpers/e2e.ts';
import { startPrivatePostgres } from '../helpers/private-postgres.ts';
import type { PrivatePostgres } from '../helpers/private-postgres.ts';

/** Everything a feed's subscriber heard, in order. */
function recorder(feed: ChangeFeed): Change[] {
  const heard: Change[] = [];
  feed.subscribe((change) => heard.push(change));
  return heard;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `heard` holds `change`; returns how long that took. */
async function heardWithin(heard: Change[], change: Change, ms: number): Promise<number> {
  const started = performance.now();
  await until(() => heard.some((c) => JSON.stringify(c) === JSON.stringify(change)), `${JSON.stringify(change)} to be heard (heard: ${JSON.stringify(heard)})`, ms);
  return performance.now() - started;
}

describe('change feed without a database (local)', () => {
  it('tells every subscriber synchronously, in order; a failing subscriber does not stop the others; unsubscribe works', async () => {
    const feed = new ChangeFeed();
    const first: Change[] = [];
    const second: Change[] = [];
    const unsubscribe = feed.subscribe((change) => first.push(change));
    feed.subscribe(() => {
      throw new Error('a buggy cache');
    });
    feed.subscribe((change) => second.push(change));
    const publishing = feed.publish({ kind: 'registry', id: 1 }, { kind: 'token', id: 2 });
    // Before the returned promise settles: local caches are dropped inside the call.
    assert.deepEqual(first, [{ kind: 'registry', id: 1 }, { kind: 'token', id: 2 }]);
    assert.deepEqual(second, first);
    await publishing;
    unsubscribe();
    await feed.publish({ kind: 'mirror_routes' });
    assert.equal(first.length, 2);
    assert.equal(second.length, 3);
  });
});

describe('change feed on SQLite', () => {
  it('is local: heard in this process, not listening for anyone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'manifold-feed-'));
    const database = openDatabase({ sqlitePath: path.join(dir, 'feed.db') });
    try {
      const heard = recorder(database.changes);
      database.changes.listen();
      await database.changes.publish({ kind: 'user', id: 7 });
      assert.deepEqual(heard, [{ kind: 'user', id: 7 }]);
      assert.deepEqual(database.changes.stats(), { sent: 0, sendFailures: 0, received: 0, listens: 0, listening: false });
    } finally {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('change feed on PostgreSQL (two processes on one schema)', () => {
  let schema: PostgresSchema;
  let other: PostgresSchema;
  let a: DatabaseHandle;
  let b: DatabaseHandle;
  let stranger: DatabaseHandle;

  before(async () => {
    schema = await createPostgresSchema('feed');
    other = await createPostgresSchema('feed_other');
    a = openDatabase({ url: schema.url, poolSize: 2 });
    b = openDatabase({ url: schema.url, poolSize: 2 });
    stranger = openDatabase({ url: other.url, poolSize: 2 });
    for (const handle of [a, b, stranger]) handle.changes.listen();
    await until(() => [a, b, stranger].every((handle) => handle.changes.stats().listening), 'every feed to listen', 10_000);
  });
  after(async () => {
    await Promise.all([a, b, stranger].map((handle) => handle?.close()));
    await schema?.drop();
    await other?.drop();
  });

  it('a change published by one is heard by the other within a second, once by its sender, never on another schema', async () => {
    const heardByA = recorder(a.changes);
    const heardByB = recorder(b.changes);
    const heardByStranger = recorder(stranger.changes);
    const change: Change = { kind: 'membership', groupId: 3, userId: 4 };
    await a.changes.publish(change);
    const ms = await heardWithin(heardByB, change, 1_000);
    assert.ok(ms < 1_000, `heard after ${Math.round(ms)} ms`);
    await sleep(200);
    assert.deepEqual(heardByA, [change], 'the sender hears its own change once (locally), not again through NOTIFY');
    assert.deepEqual(heardByB, [change]);
    assert.deepEqual(heardByStranger, [], 'another schema (another installation) hears nothing');
    assert.equal(a.changes.stats().sent, 1);
    assert.equal(b.changes.stats().received, 1);
  });

  it('a batch too large for one NOTIFY, and a payload this version cannot read, reach the others as "everything changed"', async () => {
    const heardByB = recorder(b.changes);
    await a.changes.publish({ kind: 'cache_entries', upstreamIds: Array.from({ length: 3_000 }, (_, i) => i + 1) });
    await heardWithin(heardByB, { kind: 'all' }, 1_000);

    heardByB.length = 0;
    const raw = new pg.Client({ connectionString: schema.url });
    await raw.connect();
    try {
      await raw.query("select pg_notify(left('manifold_changes:' || current_schema(), 63), $1)", [JSON.stringify({ origin: 'a newer replica', changes: [{ kind: 'quota', id: 1 }] })]);
    } finally {
      await raw.end();
    }
    await heardWithin(heardByB, { kind: 'all' }, 1_000);
    assert.deepEqual(heardByB, [{ kind: 'all' }]);
  });
});

describe('change feed when PostgreSQL goes away (a private cluster)', () => {
  let postgres: PrivatePostgres;
  let a: DatabaseHandle;
  let b: DatabaseHandle;

  before(async () => {
    postgres = await startPrivatePostgres();
    a = openDatabase({ url: postgres.url, poolSize: 2, connectTimeoutMs: 1_000 });
    b = openDatabase({ url: postgres.url, poolSize: 2, connectTimeoutMs: 1_000 });
    a.changes.listen();
    b.changes.listen();
    await until(() => a.changes.stats().listening && b.changes.stats().listening, 'both feeds to listen', 10_000);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await postgres?.destroy();
  });

  it('its listening connection cut (pg_terminate_backend): listens again, tells its subscribers to drop everything, hears changes again', async () => {
    const heardByB = recorder(b.changes);
    const listensBefore = b.changes.stats().listens;
    assert.ok((await postgres.terminateClients()) >= 2);
    await heardWithin(heardByB, { kind: 'all' }, 5_000);
    assert.equal(b.changes.stats().listens, listensBefore + 1);
    await until(() => a.changes.stats().listening && b.changes.stats().listening, 'both feeds to listen again', 5_000);
    await a.changes.publish({ kind: 'token', id: 9 });
    await heardWithin(heardByB, { kind: 'token', id: 9 }, 1_000);
  });

  it('a restart of PostgreSQL: publishing meanwhile fails quietly (counted), then both listen again and changes flow', async () => {
    const heardByB = recorder(b.changes);
    await postgres.stop();
    await until(() => !b.changes.stats().listening, 'the listening connection to be seen lost', 5_000);
    const failuresBefore = a.changes.stats().sendFailures;
    await a.changes.publish({ kind: 'upstream', id: 1 });
    assert.equal(a.changes.stats().sendFailures, failuresBefore + 1);
    await sleep(1_000);
    await postgres.start();
    await heardWithin(heardByB, { kind: 'all' }, 15_000);
    await until(() => a.changes.stats().listening && b.changes.stats().listening, 'both feeds to listen again', 15_000);
    // The pool too may need a moment to see the server back (its probe runs every 0.5 s).
    await until(async () => {
      await a.changes.publish({ kind: 'upstream', id: 2 });
      return heardByB.some((change) => change.kind === 'upstream' && change.id === 2);
    }, 'a change after the restart to be heard', 10_000);
  });
});
