// The lease of a fill across replicas (services/fill-leases.ts), on PostgreSQL whatever database the rest
// of the suite runs on (several replicas need it: TEST_DATABASE_URL, else the local `test` database; one
// that cannot be reached fails the test). Each FillLeases is one replica; short timings keep it quick.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { FillLeases } from '../../src/services/fill-leases.ts';
import { clusterDatabaseUrl } from '../helpers/cluster.ts';

const HEARTBEAT_MS = 100;
const EXPIRY_MS = 500;
const quiet = createLogger('silent', new Writable({ write: (_chunk, _encoding, done) => done() }));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fill leases (PostgreSQL)', () => {
  const schema = `leases_${process.pid}_${randomBytes(3).toString('hex')}`;
  let database: DatabaseHandle;
  const replicas: FillLeases[] = [];

  function replica(name: string): FillLeases & { metrics: ReturnType<typeof createMetrics> } {
    const metrics = createMetrics({ defaultMetrics: false });
    const leases = new FillLeases({ db: database.db, advertiseUrl: `http://${name}:5001`, heartbeatMs: HEARTBEAT_MS, expiryMs: EXPIRY_MS, logger: quiet, metrics });
    replicas.push(leases);
    return Object.assign(leases, { metrics });
  }

  before(async () => {
    const admin = new pg.Client({ connectionString: clusterDatabaseUrl });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.end();
    database = openDatabase({ url: clusterDatabaseUrl, searchPath: schema });
    await database.migrate();
  });
  after(async () => {
    for (const leases of replicas) await leases.stop();
    await database?.close();
    const admin = new pg.Client({ connectionString: clusterDatabaseUrl });
    await admin.connect();
    await admin.query(`drop schema if exists ${schema} cascade`);
    await admin.end();
  });

  it('one replica owns a fill; the others are told who, for as long as its heartbeat renews the lease', async () => {
    const a = replica('a');
    const b = replica('b');
    a.start();
    const owned = await a.claim('1:app/blobs/sha256:01');
    assert.equal(owned.kind, 'owned');
    assert.deepEqual(await b.claim('1:app/blobs/sha256:01'), { kind: 'held', owner: a.replicaId, url: 'http://a:5001' });
    await sleep(EXPIRY_MS * 2);
    assert.equal((await b.claim('1:app/blobs/sha256:01')).kind, 'held', 'renewed past its first expiry');
    assert.equal(await b.heldBy('1:app/blobs/sha256:01', a.replicaId), true);
    if (owned.kind === 'owned') await owned.release();
    assert.equal(await b.heldBy('1:app/blobs/sha256:01', a.replicaId), false, 'released');
    const next = await b.claim('1:app/blobs/sha256:01');
    assert.ok(next.kind === 'owned' && !next.takenOver, 'the next claim owns it (no takeover)');
    assert.equal((await b.metrics.clusterLeaseTakeovers.get()).values[0]?.value ?? 0, 0);
  });

  it('a lease that is not renewed expires; of the replicas racing for it exactly one takes it over, and the dead owner cannot release it', async () => {
    const dead = replica('dead');
    const claimed = await dead.claim('1:app/blobs/sha256:02');
    assert.equal(claimed.kind, 'owned');
    const [b, c] = [replica('b2'), replica('c2')];
    assert.equal((await b.claim('1:app/blobs/sha256:02')).kind, 'held', 'not expired yet');
    await sleep(EXPIRY_MS + 100);
    const claims = await Promise.all([b.claim('1:app/blobs/sha256:02'), c.claim('1:app/blobs/sha256:02')]);
    const winners = claims.filter((claim) => claim.kind === 'owned');
    assert.equal(winners.length, 1, 'one winner');
    assert.ok(winners[0].kind === 'owned' && winners[0].takenOver);
    const winner = claims[0].kind === 'owned' ? b : c;
    const loser = winner === b ? claims[1] : claims[0];
    assert.deepEqual(loser, { kind: 'held', owner: winner.replicaId, url: winner.advertiseUrl });
    assert.equal((await winner.metrics.clusterLeaseTakeovers.get()).values[0]?.value, 1);
    // The old owner coming back and releasing does not free the new owner's lease.
    if (claimed.kind === 'owned') await claimed.release();
    assert.equal(await c.heldBy('1:app/blobs/sha256:02', winner.replicaId), true);
  });

  it('leases whose owner died and that nobody needed again are deleted by any replica\'s heartbeat', async () => {
    const dead = replica('dead3');
    await dead.claim('1:app/blobs/sha256:03');
    const alive = replica('alive3');
    alive.start();
    const left = async () => (await database.db.selectFrom('fill_leases').select('key').where('key', '=', '1:app/blobs/sha256:03').execute()).length;
    assert.equal(await left(), 1);
    await sleep(2 * EXPIRY_MS + 4 * HEARTBEAT_MS);
    assert.equal(await left(), 0, 'no lease is left behind');
  });
});
