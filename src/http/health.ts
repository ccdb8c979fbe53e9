import type { FastifyInstance } from 'fastify';

export interface HealthChecks {
  database(): Promise<boolean>;
  storage(): Promise<boolean>;
}

/** /healthz: the process answers. /readyz: the database and the storage answer too. */
export function healthRoutes(app: FastifyInstance, checks: HealthChecks): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const [database, storage] = await Promise.all([checks.database(), checks.storage()]);
    const ready = database && storage;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', database, storage });
  });
}
