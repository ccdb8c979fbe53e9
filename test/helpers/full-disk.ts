// A full disk for the process's file writes, for tests of what a refused write does.
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/**
 * Makes FileHandle.writev fail with ENOSPC at or beyond `fromPosition` (every FileHandle shares one
 * prototype, so this reaches the object store's writers). Returns the function that undoes it.
 */
export async function fillDiskFrom(fromPosition: number): Promise<() => void> {
  const probe = await open(tmpdir(), 'r');
  await probe.close();
  const prototype = Object.getPrototypeOf(probe) as FileHandle;
  const writev = prototype.writev;
  prototype.writev = function (this: FileHandle, buffers: NodeJS.ArrayBufferView[], position?: number | null) {
    if ((position ?? 0) >= fromPosition) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    return writev.call(this, buffers, position ?? undefined);
  } as FileHandle['writev'];
  return () => (prototype.writev = writev);
}
