// What Kysely's migrator asks before it migrates PostgreSQL: which schemas exist and whether its own
// tables do. Kysely's own introspector answers from every schema of the database and resolves each
// table by name while it reads, so another schema dropped meanwhile fails the migration (`schema … does
// not exist`, `relation … does not exist`), and another application's `kysely_migration` in another
// schema passes for Manifold's. This one reads names only, of the schema Manifold's unqualified
// names resolve to (`current_schema()`, the first schema of its search_path), by OID.
import { PostgresDialect, sql } from 'kysely';
import type { DatabaseIntrospector, DatabaseMetadataOptions, Kysely, SchemaMetadata, TableMetadata } from 'kysely';

const KYSELY_TABLES = ['kysely_migration', 'kysely_migration_lock'];

class CurrentSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<unknown>;

  constructor(db: Kysely<unknown>) {
    this.#db = db;
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<SchemaMetadata>`select nspname as name from pg_catalog.pg_namespace`.execute(this.#db);
    return rows;
  }

  /** Tables and views of the current schema, without their columns: the migrator asks for names only. */
  async getTables(options?: DatabaseMetadataOptions): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; schema: string; relkind: string }>`
      select c.relname as name, n.nspname as schema, c.relkind
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = current_schema() and c.relkind in ('r', 'p', 'v', 'm', 'f')
      order by c.relname`.execute(this.#db);
    return rows
      .filter((row) => options?.withInternalKyselyTables || !KYSELY_TABLES.includes(row.name))
      .map((row) => ({ name: row.name, schema: row.schema, isView: row.relkind === 'v' || row.relkind === 'm', isForeign: row.relkind === 'f', columns: [] }));
  }
}

/** PostgresDialect whose introspector is the one above: for the migrator's connection only. */
export class MigrationPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db);
  }
}
