// Shared input handling for services: zod validation turned into `invalid` results, pagination,
// and recognising the database's unique violations (a race lost to a concurrent insert).
import { z } from 'zod';
import { invalid, ok } from '../result.ts';
import type { FieldErrors, Result } from '../result.ts';

/** The field name used for errors that belong to the input as a whole. */
export const BASE_FIELD = 'base';

/** Parses `input` with `schema`; every issue becomes a message under its field's dotted path. */
export function validate<T>(schema: z.ZodType<T>, input: unknown): Result<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return ok(parsed.data);
  const fields: FieldErrors = {};
  for (const issue of parsed.error.issues) {
    const field = issue.path.map(String).join('.') || BASE_FIELD;
    (fields[field] ??= []).push(issue.message);
  }
  return invalid(fields);
}

/** `page` and `per_page` (≤ 100, DESIGN §6); strings from a query string are accepted. */
export const paginationSchema = z.object({
  page: z.coerce.number().int('must be an integer').min(1, 'must be at least 1').default(1),
  per_page: z.coerce.number().int('must be an integer').min(1, 'must be at least 1').max(100, 'must be at most 100').default(20),
});
export type Pagination = z.output<typeof paginationSchema>;

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  per_page: number;
}

export function offsetOf(pagination: Pagination): number {
  return (pagination.page - 1) * pagination.per_page;
}

/** A positive integer id, or null (callers answer not_found for anything else). */
export function parseId(value: unknown): number | null {
  const id = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value;
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : null;
}

/** True when the database refused a row because of a unique index (PostgreSQL 23505, SQLite UNIQUE). */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (e.code === '23505') return true;
  // node:sqlite: SQLITE_CONSTRAINT_UNIQUE (2067) or the primary key variant (1555).
  if (e.errcode === 2067 || e.errcode === 1555) return true;
  return typeof e.message === 'string' && e.message.includes('UNIQUE constraint failed');
}
