// The in-process upstream of the conformance runner's referrers run: a FakeRegistry (which offers the
// referrers API) that also accepts the pushes of the suite's setup, so that the suite's own random
// content, with its subjects and annotations, is what the upstream holds. Monolithic blob uploads and
// manifest PUTs only; deletes are refused with 405, which the suite's teardown accepts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import type { RequestContext } from '../helpers/fake-registry.ts';
import { content, sha256 } from '../helpers/oci-image.ts';

async function body(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class PushableRegistry extends FakeRegistry {
  static override async start(): Promise<PushableRegistry> {
    const registry = new PushableRegistry({});
    await registry.listen();
    return registry;
  }

  protected override async handle(request: IncomingMessage, response: ServerResponse, context: RequestContext): Promise<void> {
    const method = request.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') return super.handle(request, response, context);
    const path = context.url.pathname;
    const json = { 'content-type': 'application/json' };
    const upload = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(path);
    if (upload && method === 'POST') {
      return context.send(202, { location: `/v2/${upload[1]}/blobs/uploads/${randomBytes(8).toString('hex')}`, 'content-length': 0 }, Buffer.alloc(0));
    }
    if (upload && method === 'PUT') {
      const bytes = await body(request);
      const digest = context.url.searchParams.get('digest');
      if (digest !== sha256(bytes)) return context.send(400, json, Buffer.from(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'digest mismatch' }] })));
      this.addBlob(upload[1], bytes);
      return context.send(201, { location: `/v2/${upload[1]}/blobs/${digest}`, 'docker-content-digest': digest }, Buffer.alloc(0));
    }
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest && method === 'PUT') {
      const [, repository, reference] = manifest;
      const bytes = await body(request);
      const stored = content(String(request.headers['content-type'] ?? 'application/vnd.oci.image.manifest.v1+json'), bytes);
      this.addManifest(repository, stored, reference.includes(':') ? [] : [reference]);
      const parsed = JSON.parse(bytes.toString('utf8')) as { subject?: { digest: string }; artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> };
      const headers: Record<string, string> = { location: `/v2/${repository}/manifests/${stored.digest}`, 'docker-content-digest': stored.digest };
      if (parsed.subject) {
        this.addReferrer(repository, parsed.subject.digest, stored, parsed.artifactType ?? parsed.config?.mediaType ?? stored.mediaType, parsed.annotations);
        headers['oci-subject'] = parsed.subject.digest;
      }
      return context.send(201, headers, Buffer.alloc(0));
    }
    return context.send(405, json, Buffer.from(JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message: 'not accepted by this fake' }] })));
  }
}
