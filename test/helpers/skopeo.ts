// Debian's skopeo as the real client of the end-to-end tests. Always asynchronous: the Manifold under
// test runs in the test process, so a blocking spawnSync would stop it from answering (deadlock).
// A missing binary is an error, never a skip: .ci/run installs it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface SkopeoRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs skopeo with `args`; resolves with its exit code and output (a failing command is not an exception). */
export function skopeo(args: string[], options: { timeoutMs?: number } = {}): Promise<SkopeoRun> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('skopeo is not installed (Debian package skopeo); the tests need it: apt-get install skopeo (.ci/run does)'));
        return;
      }
      if (error && typeof error.code !== 'number') {
        // Not an exit status (a timeout's kill, a spawn error): say which, for the assertion that shows stderr.
        resolve({ code: 1, stdout, stderr: `${stderr}\n(skopeo did not exit by itself: ${error.message}${error.signal ? `, signal ${error.signal}` : ''})` });
        return;
      }
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

/** An OCI image layout written by `skopeo copy … oci:<dir>`, read back from disk. */
export interface OciLayout {
  dir: string;
  /** The digest the layout's index.json names (the copied manifest or index). */
  topDigest: string;
  topMediaType: string;
  /** Bytes of a blob of the layout, verified against its digest (throws on a mismatch). */
  blob(digest: string): Buffer;
  /** Digests of every blob file in the layout. */
  blobDigests(): string[];
}

function readLayout(dir: string): OciLayout {
  const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType: string }[] };
  const [top] = index.manifests;
  return {
    dir,
    topDigest: top.digest,
    topMediaType: top.mediaType,
    blob(digest) {
      const [algorithm, hex] = digest.split(':');
      const bytes = readFileSync(path.join(dir, 'blobs', algorithm, hex));
      const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
      if (actual !== digest) throw new Error(`layout blob ${digest} holds bytes hashing to ${actual}`);
      return bytes;
    },
    blobDigests() {
      return readdirSync(path.join(dir, 'blobs', 'sha256')).map((hex) => `sha256:${hex}`).sort();
    },
  };
}

/** A skopeo "user": its own auth file and destination directories, removed by cleanup(). */
export class SkopeoClient {
  readonly host: string;
  readonly #dir = mkdtempSync(path.join(tmpdir(), 'manifold-skopeo-'));
  #copies = 0;

  constructor(host: string) {
    this.host = host;
  }

  get authFile(): string {
    return path.join(this.#dir, 'auth.json');
  }

  login(username: string, password: string): Promise<SkopeoRun> {
    return skopeo(['login', '--authfile', this.authFile, '--tls-verify=false', '--username', username, '--password', password, this.host]);
  }

  /**
   * `skopeo copy docker://<host>/<repository>:<tag>|@<digest> oci:<new dir>`; with `all` the whole index,
   * with `arch` one platform of it. Resolves with the run and, when it succeeded, the layout.
   */
  async copy(repository: string, reference: string, options: { all?: boolean; arch?: string; variant?: string } = {}): Promise<SkopeoRun & { layout: OciLayout | null }> {
    const dest = path.join(this.#dir, `copy-${++this.#copies}`);
    const separator = reference.includes(':') ? '@' : ':';
    const args = ['--insecure-policy'];
    if (options.arch) args.push('--override-arch', options.arch, '--override-os', 'linux');
    if (options.variant) args.push('--override-variant', options.variant);
    // Without --preserve-digests skopeo recompresses layers it does not recognise as compressed.
    args.push('copy', '--preserve-digests', '--authfile', this.authFile, '--src-tls-verify=false', '--retry-times', '0');
    if (options.all) args.push('--all');
    args.push(`docker://${this.host}/${repository}${separator}${reference}`, `oci:${dest}:copied`);
    const run = await skopeo(args);
    return { ...run, layout: run.code === 0 ? readLayout(dest) : null };
  }

  /** `skopeo list-tags docker://<host>/<repository>`: the tags when it succeeded (skopeo follows `Link` pages itself). */
  async listTags(repository: string): Promise<SkopeoRun & { tags: string[] | null }> {
    const run = await skopeo(['list-tags', '--authfile', this.authFile, '--tls-verify=false', '--retry-times', '0', `docker://${this.host}/${repository}`]);
    return { ...run, tags: run.code === 0 ? (JSON.parse(run.stdout) as { Tags: string[] }).Tags : null };
  }

  cleanup(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
