// One registry-upstream link as the management API shows it (for GET and the If-Unmodified-Since check
// of its DELETE); the link service itself only lists a registry's links.
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeFound, notFound } from './access.ts';
import { guarded } from './registry-store.ts';
import { toUpstreamView } from './upstreams.ts';
import type { RegistryUpstreamView } from './registry-upstreams.ts';

export class RegistryUpstreamQueryService {
  readonly #db: Db;

  constructor(deps: { db: Db }) {
    this.#db = deps.db;
  }

  async get(actor: Actor, linkId: number | string): Promise<Result<RegistryUpstreamView>> {
    return guarded(async () => {
      const found = await authorizeFound(actor, linkId, 'read_virtual_registry', 'link', (id) => this.#db.selectFrom('registry_upstreams').selectAll().where('id', '=', id).executeTakeFirst());
      if (!found.ok) return found;
      const link = found.value;
      const upstream = await this.#db.selectFrom('upstreams').selectAll().where('id', '=', link.upstream_id).executeTakeFirst();
      if (!upstream) return notFound('link');
      return ok({
        id: link.id, registry_id: link.registry_id, upstream_id: link.upstream_id, position: link.position,
        upstream: toUpstreamView(upstream), created_at: link.created_at, updated_at: link.updated_at,
      });
    });
  }
}
