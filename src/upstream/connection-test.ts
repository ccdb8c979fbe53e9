// "Test connection" of a saved or unsaved upstream (DESIGN §3.4): HEAD a manifest path with the
// upstream's credentials. 2xx or 404 means the upstream answers and accepts the credentials (the image
// need not exist); anything else reports the status and the upstream's own message.
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import type { UpstreamClient } from './client.ts';
import type { UpstreamTarget } from './types.ts';
import { isDockerHub } from './url.ts';

/** An image every Docker Hub answers for; elsewhere a name that needs no setup (404 is success). */
export function connectionTestImage(target: UpstreamTarget): string {
  return isDockerHub(target.url) ? 'library/alpine' : 'manifold-connection-test';
}

export async function testConnection(client: UpstreamClient, target: UpstreamTarget): Promise<Result<{ status: number }>> {
  const image = connectionTestImage(target);
  const head = await client.headManifest(target, image, 'latest');
  if (head.kind === 'found') return ok({ status: 200 });
  if (head.kind === 'not_found') return ok({ status: head.status });

  // A HEAD carries no body: after an HTTP failure ask once more with GET, which brings the upstream's message.
  const again = head.kind === 'unauthorized' || head.kind === 'rate_limited' || (head.kind === 'unavailable' && head.status !== undefined)
    ? await client.getManifest(target, image, 'latest')
    : null;
  const failure = again && again.kind === head.kind ? again : head;
  switch (failure.kind) {
    case 'unauthorized':
      return err('unauthorized', `the upstream refused the credentials: ${failure.message}`, { cause: { status: failure.status } });
    case 'rate_limited': {
      const retry = failure.retryAfterSeconds === null ? '' : ` (retry after ${failure.retryAfterSeconds} s)`;
      return err('upstream_unavailable', `the upstream rate-limits us${retry}: ${failure.message}`, { cause: { status: 429 } });
    }
    default:
      return err('upstream_unavailable', `the upstream is not usable: ${failure.kind === 'unavailable' ? failure.cause : 'unexpected answer'}`, {
        cause: { status: failure.kind === 'unavailable' ? (failure.status ?? null) : null },
      });
  }
}
