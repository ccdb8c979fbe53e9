// Runs in a worker thread of the password hashing pool (src/auth/password-hashing.ts): scrypt, computed
// synchronously here, so it occupies this thread and never one of libuv's (which serve file I/O).
import { scryptSync } from 'node:crypto';

export interface ScryptTask {
  password: string;
  /** The salt; a copy crosses the thread boundary. */
  salt: Uint8Array;
  keyLength: number;
  N: number;
  r: number;
  p: number;
  maxmem: number;
}

export default function scrypt(task: ScryptTask): Uint8Array {
  return scryptSync(task.password, task.salt, task.keyLength, { N: task.N, r: task.r, p: task.p, maxmem: task.maxmem });
}
