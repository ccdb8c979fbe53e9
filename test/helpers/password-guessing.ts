// The brute-force scenario of issue 14, shared by its test (test/e2e/brute-force-pull.test.ts) and its
// bench (bench/brute-force.ts): N clients sending wrong passwords as fast as they are answered, and a
// timed pull of a cached image with a valid token while they do.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';

export interface GuessingClients {
  /** Resolves once every client has been answered 429 at least once (the attack's steady state). */
  allRefused(): Promise<void>;
  /** Holds the clients after their current request; `resume` lets them go on. */
  pause(): void;
  resume(): void;
  /** Stops the clients; resolves with the statuses each one got, in order. */
  stop(): Promise<number[][]>;
}

/** One request on a keep-alive agent; resolves with the status once the body has been read. */
function send(agent: Agent, url: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * `clients` loops, each sending `GET /v2/` with Basic `username:<a new wrong password>` and, every other
 * time, the same to `/auth/token`, one request after the other on its own connection, as fast as they
 * are answered.
 */
export function startGuessing(baseUrl: string, options: { clients: number; username: string }): GuessingClients {
  let running = true;
  let gate: Promise<void> | null = null;
  let open = () => {};
  const refused = new Set<number>();
  let onRefused = () => {};
  const loops = Array.from({ length: options.clients }, async (_, client) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const statuses: number[] = [];
    try {
      while (running) {
        if (gate) await gate;
        if (!running) break;
        const path = statuses.length % 2 === 0 ? '/v2/' : '/auth/token?service=manifold';
        const authorization = `Basic ${Buffer.from(`${options.username}:${randomBytes(9).toString('base64url')}`).toString('base64')}`;
        const status = await send(agent, `${baseUrl}${path}`, authorization).catch(() => 0);
        statuses.push(status);
        if (status === 429 && !refused.has(client)) {
          refused.add(client);
          onRefused();
        }
      }
    } finally {
      agent.destroy();
    }
    return statuses;
  });
  return {
    allRefused: () => new Promise<void>((resolve) => {
      onRefused = () => {
        if (refused.size === options.clients) resolve();
      };
      onRefused();
    }),
    pause() {
      gate ??= new Promise<void>((resolve) => (open = resolve));
    },
    resume() {
      gate = null;
      open();
    },
    async stop() {
      running = false;
      this.resume();
      return Promise.all(loops);
    },
  };
}

interface Descriptor {
  digest: string;
  size: number;
}

function get(agent: Agent, url: string, headers: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => (res.statusCode === 200 && res.complete ? resolve(Buffer.concat(chunks)) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * Pulls `<repository>:<tag>` the way a client does (manifest, then config and layers, 3 at a time) with
 * `authorization`, checks every digest, and resolves with the seconds it took.
 */
export async function timedPull(baseUrl: string, repository: string, tag: string, authorization: string): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 3 });
  const started = process.hrtime.bigint();
  try {
    const manifest = JSON.parse((await get(agent, `${baseUrl}/v2/${repository}/manifests/${tag}`, {
      authorization, accept: 'application/vnd.oci.image.manifest.v1+json',
    })).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const blobs = [manifest.config, ...manifest.layers];
    let next = 0;
    await Promise.all(Array.from({ length: 3 }, async () => {
      while (next < blobs.length) {
        const blob = blobs[next++];
        const bytes = await get(agent, `${baseUrl}/v2/${repository}/blobs/${blob.digest}`, { authorization });
        if (sha256(bytes) !== blob.digest || bytes.length !== blob.size) throw new Error(`blob ${blob.digest}: wrong bytes`);
      }
    }));
    return Number(process.hrtime.bigint() - started) / 1e9;
  } finally {
    agent.destroy();
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
