// A real S3-compatible server for tests and the bench: s3rver in a child process on 127.0.0.1, an
// ephemeral port and a temporary directory, with one bucket; stopped by pid. s3rver does not check
// request signatures or credentials, keeps no multipart uploads listing (ListMultipartUploads) and has
// no lifecycle rules; everything the S3 backend sends otherwise is what AWS S3 answers.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ConfigInput } from '../../src/config.ts';

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  pid: number;
  /** The storage settings of a Manifold on this bucket (static credentials: s3rver accepts any). */
  storage(overrides?: Partial<NonNullable<NonNullable<ConfigInput['storage']>['s3']>>): NonNullable<ConfigInput['storage']>;
  stop(): Promise<void>;
}

export async function startS3Server(options: { bucket?: string } = {}): Promise<TestS3Server> {
  const bucket = options.bucket ?? 'manifold-test';
  const directory = mkdtempSync(path.join(tmpdir(), 'manifold-s3rver-'));
  const child: ChildProcess = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', path.join(import.meta.dirname, 's3rver-main.ts'), directory, bucket], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stopped = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (data: Buffer) => {
      output += data.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    pid: child.pid!,
    storage: (overrides = {}) => ({
      driver: 's3',
      s3: { bucket, endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', ...overrides },
    }),
    async stop() {
      if (!stopped) {
        stopped = true;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
