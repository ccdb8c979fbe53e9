// Builds what `npm start` runs: the server (src/cli/main.ts) and its password worker as minified ES modules
// in dist/server, with source maps beside them. Why (issue 19): Node keeps the source of every module it
// loaded as a string for as long as the process runs, and the sources as written (comments, type annotations
// blanked out, whole packages of which the server calls a part) held about 15 MB of an idle server's heap; one
// bundle without comments, whitespace or unused exports, escaped to ASCII so that V8 stores it one byte per
// character, holds 2.4 MB. Names are kept (no mangling), so stack traces in the logs still read as the code.
// Packages that load their own files at run time (piscina's worker, Swagger UI's pages, @fastify/swagger's
// package.json) stay in node_modules. Tests and `npm run manifold` run the sources; test/e2e/shipped-build.test.ts
// runs this build.
//   node scripts/build-server.ts              build
//   node scripts/build-server.ts --if-stale   build only when a source, the lockfile or this script is newer than the build
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const SERVER_BUILD_DIR = path.join(root, 'dist', 'server');
const built = path.join(SERVER_BUILD_DIR, 'main.js');

/** The newest modification time of the build's inputs: the sources and the installed packages' lockfile. */
function newestInput(): number {
  const sources = readdirSync(path.join(root, 'src'), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  return Math.max(...sources, statSync(path.join(root, 'package-lock.json')).mtimeMs, statSync(import.meta.filename).mtimeMs);
}

if (process.argv.includes('--if-stale') && existsSync(built) && statSync(built).mtimeMs >= newestInput()) process.exit(0);

// Loaded only to build: a start whose build is current does not pay for the bundler.
const { build } = await import('rolldown');
await build({
  cwd: root,
  input: { main: 'src/cli/main.ts', 'password-worker': 'src/auth/password-worker.ts' },
  platform: 'node',
  // Fastify's schema compilers (Ajv, fast-json-stringify): required only by an application built without
  // src/http/no-schemas.ts, the management API, on its first request.
  external: [/^piscina(\/|$)/, /^@fastify\/swagger(-ui)?(\/|$)/, /^@fastify\/(ajv-compiler|fast-json-stringify-compiler)(\/|$)/],
  logLevel: 'warn',
  output: {
    dir: SERVER_BUILD_DIR,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: '[name]-[hash].js',
    minify: { compress: true, mangle: false },
    charset: 'ascii',
    sourcemap: true,
    cleanDir: true,
  },
});
console.log(`built ${path.relative(root, SERVER_BUILD_DIR)}`);
