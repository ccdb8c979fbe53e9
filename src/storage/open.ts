// Picks the object store the configuration asks for (DESIGN §7): the filesystem under dataDir by default.
import type { Config } from '../config.ts';
import { resolvedPaths } from '../config.ts';
import { FilesystemObjectStore } from './filesystem.ts';
import type { SpooledObjectStore } from './spooled-store.ts';

/** The configured store, not yet initialised: call init() at start (it removes leftover temporary files). */
export function openObjectStore(config: Config): SpooledObjectStore {
  if (config.storage.driver === 's3') throw new Error('storage.driver s3 is not available yet; use filesystem');
  return new FilesystemObjectStore({ root: resolvedPaths(config).objectsPath });
}
