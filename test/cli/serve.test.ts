// `manifold serve` on the embedded default, as a new user starts it: a fresh directory, no configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';

const main = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

async function start(cwd: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, 'serve'], {
    cwd,
    env: { ...process.env, PORT: '0', MANIFOLD_SERVER_HOST: '127.0.0.1', MANIFOLD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  return { child, port, output: () => ({ stdout, stderr }) };
}

async function stop(child: ReturnType<typeof spawn>): Promise<number | null> {
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  return code as number | null;
}

test('first start creates SQLite in ./data, prints the generated admin password once, and is ready', async () => {
  const cwd = mkdtempSync(path.join(tmpdir(), 'manifold-serve-'));
  try {
    const first = await start(cwd);
    const ready = await fetch(`http://127.0.0.1:${first.port}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ok', database: true, storage: true });
    assert.equal((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status, 200);
    const { stderr, stdout } = first.output();
    assert.match(stderr, /username: admin\n\s+password: \S{16,}/);
    const password = /password: (\S+)/.exec(stderr)![1];
    assert.ok(!stdout.includes(password), 'the password is not written to the JSON log');
    assert.equal(await stop(first.child), 0, 'SIGTERM ends the process cleanly');
    assert.ok(existsSync(path.join(cwd, 'data', 'manifold.db')));

    const second = await start(cwd);
    assert.equal((await fetch(`http://127.0.0.1:${second.port}/readyz`)).status, 200);
    assert.doesNotMatch(second.output().stderr, /password:/, 'the admin password is printed on the first start only');
    await stop(second.child);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('invalid configuration stops the start with the setting named', async () => {
  const cwd = mkdtempSync(path.join(tmpdir(), 'manifold-serve-'));
  try {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, 'serve'], {
      cwd,
      env: { ...process.env, MANIFOLD_LIMITS_REGISTRIES_PER_GROUP: 'many' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(stderr, /limits\.registriesPerGroup \(MANIFOLD_LIMITS_REGISTRIES_PER_GROUP\)/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
