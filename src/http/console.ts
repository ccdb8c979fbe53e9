// The web console (issue 20): the files Vite built into dist/console (`npm run build:console`, run by
// `npm ci`), served from disk when a browser asks and never held in memory, so that a server nobody
// browses pays nothing for them. index.html is revalidated on every load; the assets it names carry a
// content hash in their file name and are cached for a year. A gzip copy made at build time is sent to
// clients that accept it.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export const CONSOLE_ASSETS_PREFIX = '/console/assets/';
// Two levels up from src/http/ and from the server build's dist/server/ alike.
export const DEFAULT_CONSOLE_ROOT = fileURLToPath(new URL('../../dist/console/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** The page may load only its own scripts, styles and images, and talk only to its own origin. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Built asset names: Vite's `<name>-<hash>.<ext>`, nothing that could climb out of the folder. */
const ASSET_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.[a-z0-9]+$/;

export function consoleRoutes(app: FastifyInstance, options: { root?: string } = {}): void {
  const root = options.root ?? DEFAULT_CONSOLE_ROOT;
  const assets = path.join(root, 'assets');

  const index = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('cache-control', 'no-cache')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer');
    const sent = await sendFile(request, reply, path.join(root, 'index.html'), 'text/html; charset=utf-8');
    if (sent) return sent;
    return reply.code(503).type('text/plain; charset=utf-8').header('cache-control', 'no-store')
      .send('The console is not built: run `npm run build:console` (`npm ci` does it).\n');
  };
  app.get('/', index);
  app.get('/index.html', index);

  app.get<{ Params: { file: string } }>(`${CONSOLE_ASSETS_PREFIX}:file`, async (request, reply) => {
    const file = request.params.file;
    const type = CONTENT_TYPES[path.extname(file)];
    if (!ASSET_NAME.test(file) || !type) return notFound(reply);
    reply.header('cache-control', 'public, max-age=31536000, immutable').header('x-content-type-options', 'nosniff');
    return (await sendFile(request, reply, path.join(assets, file), type)) ?? notFound(reply);
  });
}

function notFound(reply: FastifyReply): FastifyReply {
  return reply.code(404).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send('not found\n');
}

/** Streams `file` (or its `.gz` copy when the client accepts gzip); null when the file is not there. */
async function sendFile(request: FastifyRequest, reply: FastifyReply, file: string, type: string): Promise<FastifyReply | null> {
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  const candidates = gzip ? [`${file}.gz`, file] : [file];
  for (const candidate of candidates) {
    const info = await stat(candidate).catch(() => null);
    if (!info?.isFile()) continue;
    reply.header('vary', 'accept-encoding').header('content-length', String(info.size))
      .header('last-modified', info.mtime.toUTCString());
    if (candidate !== file) reply.header('content-encoding', 'gzip');
    reply.type(type);
    return reply.send(createReadStream(candidate));
  }
  return null;
}
