// The peer listener (README "Running several replicas"): where the other replicas stream a blob whose
// fill this replica owns (services/peer-fills.ts is the other side). It listens on cluster.port, apart
// from the clients' port, so that a load balancer in front of server.port never exposes it; every
// request must be signed with the shared cluster.secret (auth/peer-signature.ts). It only ever serves
// this replica's own fills in flight, from their followers: the same held-back end, the same broken
// transfer when the fill fails, as for this replica's own clients. Anything else is a 404, and the
// asking replica looks in the shared store.
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyPeerRequest, PEER_AUTH_SCHEME } from '../auth/peer-signature.ts';
import type { Logger } from '../log.ts';
import type { BlobFill, BlobFills } from '../services/blob-fills.ts';
import { PEER_DIGEST_HEADER, PEER_FILL_PATH, PEER_SIZE_HEADER } from '../services/peer-fills.ts';
import type { ByteRange } from '../storage/object-store.ts';
import { WITHOUT_SCHEMAS } from './no-schemas.ts';

export interface PeerAppDeps {
  logger: Logger;
  secret: string;
  fills: Pick<BlobFills, 'ownFill'>;
}

/** `bytes=<start>-<end>` or `bytes=<start>-`: the only forms a replica sends. */
function parseRange(header: string | undefined): ByteRange | null | 'invalid' {
  if (header === undefined) return null;
  const match = /^bytes=(\d{1,15})-(\d{0,15})$/.exec(header);
  if (!match) return 'invalid';
  const start = Number(match[1]);
  const end = match[2] === '' ? Infinity : Number(match[2]);
  return end >= start ? { start, end } : 'invalid';
}

export function buildPeerApp(deps: PeerAppDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, disableRequestLogging: true, requestTimeout: 0, return503OnClosing: true, schemaController: WITHOUT_SCHEMAS });

  const fillOf = async (request: FastifyRequest, reply: FastifyReply): Promise<BlobFill | null> => {
    if (!verifyPeerRequest(deps.secret, request.method, request.url, request.headers.authorization)) {
      reply.code(401).header('WWW-Authenticate', PEER_AUTH_SCHEME).send({ error: 'not signed with the cluster secret' });
      return null;
    }
    const key = (request.query as { key?: unknown }).key;
    const fill = typeof key === 'string' ? await deps.fills.ownFill(key) : null;
    if (!fill) {
      reply.code(404).send({ error: 'no fill of this key in flight here' });
      return null;
    }
    reply.header(PEER_DIGEST_HEADER, fill.digest).header(PEER_SIZE_HEADER, fill.size === null ? '' : String(fill.size));
    return fill;
  };

  app.head(PEER_FILL_PATH, async (request, reply) => {
    const fill = await fillOf(request, reply);
    return fill ? reply.code(200).send() : reply;
  });

  app.get(PEER_FILL_PATH, { exposeHeadRoute: false }, async (request, reply) => {
    const fill = await fillOf(request, reply);
    if (!fill) return reply;
    const range = parseRange(request.headers.range);
    if (range === 'invalid' || (range && fill.size !== null && range.start >= fill.size) || (range && fill.size === null)) {
      return reply.code(416).send({ error: 'range not satisfiable' });
    }
    const body = await fill.attach(range ?? undefined);
    // The fill failed: the asking replica finds no object in the store either, and answers its client so.
    if (!body.ok) return reply.code(404).send({ error: body.message });
    if (range && fill.size !== null) {
      const end = Math.min(range.end, fill.size - 1);
      reply.code(206).header('Content-Range', `bytes ${range.start}-${end}/${fill.size}`).header('Content-Length', end - range.start + 1);
    } else if (fill.size !== null) {
      reply.header('Content-Length', fill.size);
    }
    // A fill that fails half-way destroys the connection: the asking replica's client sees a broken transfer.
    return reply.type('application/octet-stream').send(body.value);
  });

  return app;
}
