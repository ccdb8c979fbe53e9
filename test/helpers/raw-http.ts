// Raw HTTP/1.1 over a socket, for requests no client library would send: control characters or
// characters above U+00FF in the path, forged Host headers, malformed request lines and headers. The
// request is written as given (with `Connection: close`) and the whole answer read and parsed.
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  /** Header names in lower case; repeated headers joined with ", " (set-cookie kept apart is not needed here). */
  headers: Record<string, string>;
  /** Every value of each header, in order. */
  all: Record<string, string[]>;
  body: Buffer;
}

export interface RawRequest {
  method?: string;
  /** The request target exactly as it goes on the wire (not encoded here). */
  target: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Replaces the whole request (request line and headers) when a test needs bytes no request has. */
  raw?: Buffer;
}

function decodeChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd < 0) break;
    const size = parseInt(body.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** Parses one HTTP/1.1 response; throws when the bytes are not one. */
export function parseResponse(bytes: Buffer): RawAnswer {
  const headerEnd = bytes.indexOf('\r\n\r\n');
  if (headerEnd < 0) throw new Error(`not an HTTP response: ${JSON.stringify(bytes.subarray(0, 200).toString('latin1'))}`);
  const [statusLine, ...lines] = bytes.subarray(0, headerEnd).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!status) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
  const all: Record<string, string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    (all[line.slice(0, colon).trim().toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
  }
  const headers = Object.fromEntries(Object.entries(all).map(([name, values]) => [name, values.join(', ')]));
  let body = bytes.subarray(headerEnd + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = decodeChunked(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(status[1]), headers, all, body };
}

/** Sends one request on a new connection to 127.0.0.1:`port` and reads the answer to its end. */
export function rawRequest(port: number, request: RawRequest, timeoutMs = 30_000): Promise<RawAnswer> {
  const body = request.body === undefined ? Buffer.alloc(0) : Buffer.from(request.body);
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...request.headers };
  if (body.length > 0 && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = String(body.length);
  const head = `${request.method ?? 'GET'} ${request.target} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
  const wire = request.raw ?? Buffer.concat([Buffer.from(head, 'latin1'), body]);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    // No half-close: a server may drop a request whose client has ended its side before the answer.
    socket.on('connect', () => socket.write(wire));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      // A server may answer and reset at once (a request it refuses before reading it all).
      if (chunks.length > 0) {
        try {
          return resolve(parseResponse(Buffer.concat(chunks)));
        } catch {
          // fall through to the error
        }
      }
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

/** The body as JSON, or undefined when it is not JSON. */
export function jsonOf(answer: RawAnswer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    return undefined;
  }
}
