// Issue 14, "Measure": the time of a valid pull of a cached image with and without 16 clients guessing
// passwords. Manifold runs as `manifold serve` (a child process, SQLite, default throttle and password
// hashing settings); the guessing clients and the pulls run in this process.
//
//   node --disable-warning=ExperimentalWarning bench/brute-force.ts
//   BENCH_GUESSERS=16 BENCH_PULLS=7 BENCH_LAYERS_MB=4,4,8 node --disable-warning=ExperimentalWarning bench/brute-force.ts
//
// Pulls alternate between the guessing clients paused and running, once every client has met the
// throttle. Prints the median (min–max) of each, and what the guessing
// clients got (how many requests, how many 401 and 429, the request at which each first got a 429).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../test/helpers/distribution.ts';
import { basicToken, createVirtualRegistry, dropSchema, personalToken, startManifold, unwrap } from '../test/helpers/manifold.ts';
import { spawnManifold } from '../test/helpers/manifold-process.ts';
import { buildImage, pushImage } from '../test/helpers/oci-image.ts';
import { median, startGuessing, timedPull } from '../test/helpers/password-guessing.ts';

const MiB = 1024 * 1024;
const GUESSERS = Number(process.env.BENCH_GUESSERS ?? 16);
const PULLS = Number(process.env.BENCH_PULLS ?? 7);
const LAYERS = (process.env.BENCH_LAYERS_MB ?? '4,4,8').split(',').map((size) => Number(size) * MiB);
const REPOSITORY = 'bench/hub/library/app';

const summary = (values: number[]) => `${median(values).toFixed(3)} s (${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)}, n=${values.length})`;

const upstream = await Distribution.start();
const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-bench-guess-'));
const schema = `bench_guess_${process.pid}`;
try {
  await pushImage(upstream.url, 'library/app', buildImage({ layerSizes: LAYERS }), { tag: 'v1' });
  const setup = await startManifold({}, { dataDir, schema });
  await createVirtualRegistry(setup, { group: 'bench', registry: 'hub', upstreamUrls: [upstream.url] });
  const authorization = basicToken(await personalToken(setup));
  unwrap(await setup.manifold.services.users.create(setup.admin, { username: 'victim', password: 'the victim password' }));
  const databaseUrl = setup.databaseUrl;
  await setup.stop();

  const server = await spawnManifold({ dataDir, databaseUrl, env: { MANIFOLD_LOG_LEVEL: 'warn' } });
  try {
    await timedPull(server.url, REPOSITORY, 'v1', authorization); // the cold pull fills the cache
    const guessing = startGuessing(server.url, { clients: GUESSERS, username: 'victim' });
    // The attack's steady state: every guessing client has met the throttle.
    const startedAt = Date.now();
    await guessing.allRefused();
    const steadyAfter = (Date.now() - startedAt) / 1000;
    // Alternately without and with the guessing clients, so that the machine's other load hits both alike.
    const quiet: number[] = [];
    const attacked: number[] = [];
    for (let i = 0; i < PULLS; i++) {
      guessing.pause();
      quiet.push(await timedPull(server.url, REPOSITORY, 'v1', authorization));
      guessing.resume();
      attacked.push(await timedPull(server.url, REPOSITORY, 'v1', authorization));
    }
    const statuses = await guessing.stop();
    const all = statuses.flat();
    const firstRefusals = statuses.map((list) => list.indexOf(429) + 1).filter((at) => at > 0);
    console.log(`Manifold pid ${server.pid}, ${databaseUrl ? 'PostgreSQL' : 'SQLite'}, image of ${LAYERS.map((size) => size / MiB).join(' + ')} MiB, ${GUESSERS} guessing clients`);
    console.log(`every guessing client refused (429) ${steadyAfter.toFixed(1)} s after the attack began`);
    console.log(`valid pull, guessing clients paused:  ${summary(quiet)}`);
    console.log(`valid pull, guessing clients running: ${summary(attacked)}`);
    console.log(`ratio of the medians:                 ${(median(attacked) / median(quiet)).toFixed(2)}`);
    console.log(`guesses: ${all.length} requests, ${all.filter((s) => s === 401).length} × 401, ${all.filter((s) => s === 429).length} × 429, ${all.filter((s) => s !== 401 && s !== 429).length} other; first 429 at request ${Math.min(...firstRefusals)}–${Math.max(...firstRefusals)} of each client`);
  } finally {
    await server.kill('SIGTERM');
  }
} finally {
  await upstream.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await dropSchema(schema);
}
