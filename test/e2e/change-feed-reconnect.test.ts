// The change feed's listening connection (src/db/change-feed.ts) when PostgreSQL goes away, on a
// private cluster: a connection cut (pg_terminate_backend) or a restart is listened to again, and the
// subscribers are told to drop everything (notifications may have been missed); a publish while the
// database is down fails quietly and is counted. Runs the same way in both CI passes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Change, ChangeFeed } from '../../src/db/change-feed.ts';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { until } from '../helpers/e2e.ts';
import { startPrivatePostgres } from '../helpers/private-postgres.ts';
import type { PrivatePostgres } from '../helpers/private-postgres.ts';

function recorder(feed: ChangeFeed): Change[] {
  const heard: Change[] = [];
  feed.subscribe((change) => heard.push(change));
  return heard;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function heardWithin(heard: Change[], change: Change, ms: number): Promise<void> {
  await until(() => heard.some((c) => JSON.stringify(c) === JSON.stringify(change)), `${JSON.stringify(change)} to be heard (heard: ${JSON.stringify(heard)})`, ms);
}

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
