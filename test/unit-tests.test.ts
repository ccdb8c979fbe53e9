// `npm run test:unit` is a newcomer's first run: the test files it selects (package.json's globs: every
// folder of test/ but e2e, console and fuzz) must need no Debian package and no PostgreSQL. This checks the
// convention: no selected file reaches, through its imports, a helper that starts a daemon or a browser, or
// names such a program itself; and `npm test` still runs every test file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** The quoted globs of an npm script. */
function globsOf(script: string): string[] {
  return [...script.matchAll(/"([^"]*\*[^"]*)"/g)].map((match) => match[1]);
}

function filesOf(script: string): string[] {
  return [...new Set(globsOf(script).flatMap((glob) => globSync(glob, { cwd: root })))].sort();
}

/** Helpers that start what a newcomer's machine may not have. */
const NEEDS_INSTALLED = new Map([
  ['test/helpers/distribution.ts', 'Debian\'s docker-registry'],
  ['test/helpers/skopeo.ts', 'the skopeo tool'],
  ['test/helpers/daemons.ts', 'the containerd, podman and docker daemons'],
  ['test/helpers/browser.ts', 'a chromium browser'],
  ['test/helpers/private-postgres.ts', 'the PostgreSQL server programs'],
]);
/** The programs themselves, for a test that starts one without a helper. */
const PROGRAMS = /['"`](docker-registry|skopeo|ctr|containerd|podman|dockerd|chromium|\/usr\/bin\/chromium|initdb|pg_ctl)['"`]/;
/** test/helpers/db.ts's PostgreSQL in every pass (its createTestDatabase uses PostgreSQL only when asked). */
const ALWAYS_POSTGRES = /import\s*\{[^}]*\b(postgresUrl|createPostgresSchema|withPostgresClient)\b[^}]*\}\s*from '(\.\.?\/)+helpers\/db\.ts'/;

/** What the file, or a test file it imports (transitively), needs installed. */
function needs(file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return [];
  seen.add(file);
  const found: string[] = [];
  const known = NEEDS_INSTALLED.get(file);
  if (known) found.push(`${file} (${known})`);
  const source = readFileSync(path.join(root, file), 'utf8');
  const program = PROGRAMS.exec(source);
  if (program) found.push(`${file} starts ${program[1]}`);
  if (ALWAYS_POSTGRES.test(source)) found.push(`${file} needs PostgreSQL in every pass`);
  for (const [, specifier] of source.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+\.ts)'/g)) {
    const imported = path.relative(root, path.resolve(root, path.dirname(file), specifier));
    if (imported.startsWith('test/')) found.push(...needs(imported, seen));
  }
  return found;
}

test('the files of npm run test:unit need no daemon, browser or PostgreSQL', () => {
  const unit = filesOf(scripts['test:unit']);
  assert.ok(unit.length > 40, `test:unit selects ${unit.length} files`);
  const offenders = unit.map((file) => ({ file, needs: needs(file) })).filter((entry) => entry.needs.length > 0);
  assert.deepEqual(offenders, [], 'move these to test/e2e (or stop them starting programs)');
});

test('npm test runs every test file, test:unit a part of them', () => {
  const all = filesOf(scripts['test:only']);
  const everyFile = globSync('test/**/*.test.ts', { cwd: root }).sort();
  assert.deepEqual(all, everyFile);
  const unit = filesOf(scripts['test:unit']);
  assert.deepEqual(unit.filter((file) => !all.includes(file)), []);
  assert.ok(everyFile.some((file) => file.startsWith('test/e2e/')) && !unit.some((file) => file.startsWith('test/e2e/')), 'test:unit leaves the end-to-end tests out');
});

test('the helper list is real: the end-to-end tests do need what it names', () => {
  // Were the list wrong (a renamed helper), the first test would pass vacuously.
  for (const helper of NEEDS_INSTALLED.keys()) assert.ok(globSync(helper, { cwd: root }).length === 1, `${helper} exists`);
  assert.notDeepEqual(needs('test/e2e/skopeo-pull.test.ts'), []);
  assert.notDeepEqual(needs('test/console/guest-and-errors.test.ts'), []);
  assert.notDeepEqual(needs('test/e2e/postgres-migrate.test.ts'), []);
});
