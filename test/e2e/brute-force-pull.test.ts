// Issue 14, "Must show": 16 clients sending wrong passwords while one client pulls a cached image with a
// valid token. The pull stays within 1.5× of its time without the attack, and the guessing clients get
// 429 after a few tries. Manifold runs as its own process (`manifold serve`, default settings) so that
// the clients in this process do not share its event loop.
//
// A timed ratio, asserted because the issue demands it, made robust for a loaded 2-core machine: the
// pulls alternate between the guessing clients paused and running (the machine's other load hits both
// alike), once every client has met the throttle, and the medians of 7 pulls each are compared.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../helpers/distribution.ts';
import { basicToken, createVirtualRegistry, dropSchema, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import { spawnManifold } from '../helpers/manifold-process.ts';
import type { ManifoldProcess } from '../helpers/manifold-process.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { median, startGuessing, timedPull } from '../helpers/password-guessing.ts';

const MiB = 1024 * 1024;
const REPOSITORY = 'acme/hub/library/app';

describe('a valid pull while 16 clients guess passwords', () => {
  let upstream: Distribution;
  let server: ManifoldProcess;
  let authorization: string;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-guessing-'));
  const schema = `e2e_guess_${process.pid}`;

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', buildImage({ layerSizes: [4 * MiB, 4 * MiB, 8 * MiB] }), { tag: 'v1' });
    const setup = await startManifold({}, { dataDir, schema });
    await createVirtualRegistry(setup, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    authorization = basicToken(await personalToken(setup));
    unwrap(await setup.manifold.services.users.create(setup.admin, { username: 'victim', password: 'the victim password' }));
    const databaseUrl = setup.databaseUrl;
    await setup.stop();
    server = await spawnManifold({ dataDir, databaseUrl, env: { MANIFOLD_LOG_LEVEL: 'warn' } });
    await timedPull(server.url, REPOSITORY, 'v1', authorization); // fills the cache
  });
  after(async () => {
    await server?.kill('SIGTERM');
    await upstream?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await dropSchema(schema);
  });

  it('keeps the pull within 1.5× of its time without the attack, and answers the guesses 429 after a few tries', async () => {
    const guessing = startGuessing(server.url, { clients: 16, username: 'victim' });
    let statuses: number[][];
    const quiet: number[] = [];
    const attacked: number[] = [];
    try {
      await guessing.allRefused();
      for (let i = 0; i < 7; i++) {
        guessing.pause();
        quiet.push(await timedPull(server.url, REPOSITORY, 'v1', authorization));
        guessing.resume();
        attacked.push(await timedPull(server.url, REPOSITORY, 'v1', authorization));
      }
    } finally {
      statuses = await guessing.stop();
    }
    const ratio = median(attacked) / median(quiet);
    assert.ok(ratio <= 1.5, `median pull ${median(attacked).toFixed(3)} s under attack against ${median(quiet).toFixed(3)} s without (×${ratio.toFixed(2)}); all: ${JSON.stringify({ quiet, attacked })}`);
    for (const [client, list] of statuses.entries()) {
      const first = list.indexOf(429);
      assert.ok(first >= 0 && first < 4, `client ${client} got its first 429 at request ${first + 1}: ${list.slice(0, 10).join(' ')}`);
      assert.deepEqual([...new Set(list)].filter((status) => status !== 401 && status !== 429), [], `client ${client}: only 401 and 429`);
    }
  });
});
