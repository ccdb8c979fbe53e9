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

/**
 * Control characters (C0, DEL, C1) and the bidirectional overrides that make text display as something
 * else ("Trojan Source"): none belongs in a name that is shown in lists, logs and audit events.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_OR_BIDI = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;
/** In a description, line breaks and tabs are text; the rest of the above is not. */
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_IN_DESCRIPTION = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** A human-readable name (token, group, upstream): trimmed, 1..255 characters, no control characters. */
export const freeTextNameSchema = z.string('must be a string').trim().min(1, 'is required').max(255, 'must be at most 255 characters')
  .refine((value) => !CONTROL_OR_BIDI.test(value), 'must not contain control characters');

/** A description of at most `max` characters: line breaks and tabs allowed, other control characters not. */
export function descriptionSchema(max: number) {
  return z.string('must be a string').max(max, `must be at most ${max} characters`)
    .refine((value) => !CONTROL_IN_DESCRIPTION.test(value), 'must not contain control characters other than line breaks and tabs');
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
