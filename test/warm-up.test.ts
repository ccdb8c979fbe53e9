import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropSpareBuffers } from '../src/storage/object-stream.ts';
import { warmUp } from '../src/warm-up.ts';
import { startManifold } from './helpers/manifold.ts';

test('the warm-up keeps none of its fill\'s copy buffers: a server that never fills a blob holds none (1 MiB idle)', async () => {
  const server = await startManifold();
  try {
    dropSpareBuffers();
    await warmUp(server.manifold);
    assert.ok(!server.logs.some((line) => line.includes('warm-up before listening failed')), server.logs.join(''));
    assert.equal(dropSpareBuffers(), 0, 'copy buffers of the warm-up fill were kept for reuse');
  } finally {
    await server.stop();
  }
});
