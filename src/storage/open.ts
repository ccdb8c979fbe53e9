// Picks the object store the configuration asks for (DESIGN §7, §8): the filesystem under dataDir by
// default, or an S3 bucket with a local spool.
import type { Config } from '../config.ts';
import { resolvedPaths } from '../config.ts';
import type { Logger } from '../log.ts';
import { FilesystemObjectStore } from './filesystem.ts';
import { SpooledObjectStore } from './spooled-store.ts';

/** The configured store, not yet initialised: call init() at start (it removes leftover temporary files). */
export async function openObjectStore(config: Config, logger?: Logger): Promise<SpooledObjectStore> {
  const paths = resolvedPaths(config);
  if (config.storage.driver === 'filesystem') return new FilesystemObjectStore({ root: paths.objectsPath });
  // Loaded only when used: the AWS SDK adds seconds and ~20 MB to a start on a busy machine.
  const { S3Backend } = await import('./s3.ts');
  const s3 = config.storage.s3;
  const backend = new S3Backend({
    bucket: s3.bucket!,
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    credentials: s3.accessKeyId && s3.secretAccessKey ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: s3.sessionToken } : undefined,
    redirect: s3.redirect,
    redirectExpirySeconds: s3.redirectExpirySeconds,
    partSizeBytes: s3.partSizeMb * 1024 * 1024,
    logger,
  });
  return new SpooledObjectStore({ backend, spoolDirectory: paths.spoolPath });
}
