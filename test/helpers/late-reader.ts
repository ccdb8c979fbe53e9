// A destination that takes its bytes only when it completes a write, a little later (like a socket still
// sending a buffer), as HTTP responses take a stream body: a stream that reuses a buffer before the
// write completed corrupts what arrives here.
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

export function lateReadingDestination(): { destination: Writable; received: () => Buffer; ended: Promise<void> } {
  const parts: Buffer[] = [];
  const destination = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      setTimeout(() => {
        parts.push(Buffer.from(chunk));
        callback();
      }, 1);
    },
  });
  return { destination, received: () => Buffer.concat(parts), ended: finished(destination) };
}
