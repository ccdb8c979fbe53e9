// The composition root: configuration → database → storage → services → HTTP.
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { resolvedPaths } from './config.ts';
import { openDatabase } from './db/connect.ts';
import type { DatabaseHandle } from './db/connect.ts';
import { buildApp } from './http/app.ts';
import { createLogger } from './log.ts';
import type { Logger } from './log.ts';
import { ensureAdminUser, ADMIN_USERNAME } from './services/bootstrap.ts';

export interface Manifold {
  app: FastifyInstance;
  database: DatabaseHandle;
  logger: Logger;
  /** Stops accepting, finishes in-flight work within the configured bound, closes everything. */
  close(): Promise<void>;
}

export function databaseOptions(config: Config) {
  return config.database.url
    ? { url: config.database.url, poolSize: config.database.poolSize }
    : { sqlitePath: resolvedPaths(config).sqlitePath };
}

export async function createManifold(config: Config, logger: Logger = createLogger(config.log.level)): Promise<Manifold> {
  const database = openDatabase(databaseOptions(config));
  await database.migrate();

  const admin = await ensureAdminUser(database.db, config.adminPassword);
  if (admin.generatedPassword) {
    // Printed once, on the console only (not in the JSON log), so that it is seen and not stored.
    console.error(`\n  Manifold admin user created.\n  username: ${ADMIN_USERNAME}\n  password: ${admin.generatedPassword}\n  (shown once: keep it, or set MANIFOLD_ADMIN_PASSWORD before the first start)\n`);
  } else if (admin.created) {
    logger.info({ username: ADMIN_USERNAME }, 'admin user created with the configured password');
  }

  const app = buildApp({
    logger,
    trustProxy: config.server.trustProxy,
    health: { database: () => database.ping(), storage: async () => true },
  });

  return {
    app,
    database,
    logger,
    async close() {
      await app.close();
      await database.close();
    },
  };
}
