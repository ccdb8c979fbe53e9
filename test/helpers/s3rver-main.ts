// Runs s3rver (an S3-compatible server on the local disk) on loopback as a process of its own, for the
// tests and the bench: `node s3rver-main.ts <directory> <bucket>`. Prints `listening <port>` once the
// bucket exists; stops on SIGTERM.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import S3rver from 's3rver';

// s3rver 3.7 reads `Range: bytes=0-0` as `bytes=0-` (its `end || Infinity`): S3 answers one byte. Its
// store is given the end as a Number object, which is truthy and compares as 0.
const FilesystemStore = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js') as { prototype: { getObject(bucket: string, key: string, options?: { start?: number; end?: unknown }): Promise<unknown> } };
const getObject = FilesystemStore.prototype.getObject;
FilesystemStore.prototype.getObject = function (bucket, key, options) {
  return getObject.call(this, bucket, key, options?.end === 0 ? { ...options, end: new Number(0) } : options);
};

const [directory, bucket] = process.argv.slice(2);
mkdirSync(directory, { recursive: true });
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket, configs: [] }] });
const address = await server.run();
process.stdout.write(`listening ${address.port}\n`);
process.once('SIGTERM', () => {
  server.close().then(() => process.exit(0), () => process.exit(1));
});
