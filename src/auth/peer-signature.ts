// Requests between replicas (the peer listener, README "Running several replicas") carry an HMAC of
// the method, the path with its query and the time, keyed with the shared cluster.secret: the secret
// never travels, a request cannot be altered, and a recorded one is refused once a minute old.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const PEER_AUTH_SCHEME = 'Manifold-Peer';
const MAX_SKEW_MS = 60_000;

function mac(secret: string, method: string, path: string, at: number): string {
  return createHmac('sha256', secret).update(`${at}\n${method.toUpperCase()}\n${path}`).digest('hex');
}

/** The Authorization header of a request from this replica to another. */
export function signPeerRequest(secret: string, method: string, path: string, now = Date.now()): string {
  return `${PEER_AUTH_SCHEME} t=${now},sig=${mac(secret, method, path, now)}`;
}

/** Whether the header signs this request with the secret, within a minute of now. */
export function verifyPeerRequest(secret: string, method: string, path: string, header: string | undefined, now = Date.now()): boolean {
  const match = header ? /^Manifold-Peer t=(\d{1,16}),sig=([0-9a-f]{64})$/.exec(header) : null;
  if (!match) return false;
  const at = Number(match[1]);
  if (Math.abs(now - at) > MAX_SKEW_MS) return false;
  return timingSafeEqual(Buffer.from(match[2], 'hex'), Buffer.from(mac(secret, method, path, at), 'hex'));
}
