// What `npm start` runs (package.json): its environment assignments, Node flags and entry point, so that the
// bench and the shipped-build test start Manifold exactly as users do, without npm's process in between
// (whose pid the bench would measure).
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '../..');

export interface NpmStart {
  env: Record<string, string>;
  nodeFlags: string[];
  /** The entry point relative to the repository root (the server build, dist/server/main.js). */
  main: string;
}

let prestartRan = false;

/** The start script's parts; with `prestart`, runs package.json's `prestart` once first (the build, when stale). */
export function npmStart(options: { prestart?: boolean } = {}): NpmStart {
  const scripts = (JSON.parse(readFileSync(path.join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  if (options.prestart && scripts.prestart && !prestartRan) {
    // npm puts node_modules/.bin (the pinned Node) first on PATH; so does this.
    execSync(scripts.prestart, { cwd: REPOSITORY_ROOT, stdio: 'inherit', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` } });
    prestartRan = true;
  }
  const words = scripts.start.trim().split(/\s+/);
  const node = words.indexOf('node');
  const main = words.findIndex((word) => /\.[jt]s$/.test(word));
  if (node < 0 || main < node || words.slice(main + 1).join(' ') !== 'serve') throw new Error(`cannot read the start script: ${scripts.start}`);
  const env = Object.fromEntries(words.slice(0, node).map((word) => word.split('=', 2) as [string, string]));
  return { env, nodeFlags: words.slice(node + 1, main), main: words[main] };
}
