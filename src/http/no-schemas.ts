// Fastify's JSON Schema compilers (Ajv for requests, fast-json-stringify for responses) for the applications
// that declare no schemas: the registry protocol, the token endpoint, health, the console's files, the peer
// listener. Given none, Fastify loads its own when an application is created, Ajv included: 0.6 MB of
// source in the server build and the code it runs (issue 19). The management API, which declares schemas,
// is built with Fastify's own compilers, loaded by its first request (scripts/build-server.ts keeps them
// out of the build).
import type { FastifyServerOptions } from 'fastify';

function noSchemasHere(): never {
  throw new Error('this application compiles no JSON schemas (src/http/no-schemas.ts); declare routes with schemas in the management API');
}

export const WITHOUT_SCHEMAS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: () => noSchemasHere,
    buildSerializer: () => noSchemasHere,
  },
};
