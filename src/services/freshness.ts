// The freshness policy of an upstream (DESIGN §3.5): how long a cached tag is served without asking,
// how long past that it may be served while a refresh runs in the background or while the upstream
// fails, which tags are pinned, and how long an upstream's 404 is remembered. Optional rules by
// repository and tag pattern override the upstream's values; the first rule that matches wins.
import { z } from 'zod';

export const MAX_POLICY_SECONDS = 365 * 24 * 3600;
export const MAX_NEGATIVE_CACHE_SECONDS = 3600;
export const MAX_FRESHNESS_RULES = 50;
export const DEFAULT_MAX_AGE_SECONDS = 24 * 3600;
export const DEFAULT_NEGATIVE_CACHE_SECONDS = 30;

/** What a rule may override: every tag-level setting, each optional. */
export interface FreshnessSettings {
  /** Seconds a cached tag is served without asking its upstream. */
  max_age: number;
  /** Seconds past max_age during which the cached tag is served at once and refreshed in the background; 0 = off. */
  stale_while_revalidate: number;
  /** Seconds past max_age a cached tag may still be served when its upstream fails; null = without limit. */
  stale_if_error: number | null;
  /** The first digest seen stays until the entry is purged: never revalidated. */
  pin: boolean;
}

export interface FreshnessRule extends Partial<FreshnessSettings> {
  /** `<repository glob>:<tag glob>` or `<repository glob>` (any tag); `*` is any run of characters. */
  match: string;
}

export interface FreshnessPolicy extends FreshnessSettings {
  /** Seconds an upstream's 404 for a path is remembered (not asked again); 0 = off. */
  negative_cache: number;
  rules: FreshnessRule[];
}

/** The settings that apply to one tag, in milliseconds, for the pull decision. */
export interface TagFreshness {
  maxAgeMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number | null;
  pin: boolean;
  /** The rule that matched (its `match`), null for the upstream's own settings. */
  rule: string | null;
}

const seconds = (max: number, what: string) => z.number(`must be a whole number of seconds`)
  .int('must be a whole number of seconds').min(0, 'must be at least 0').max(max, `must be at most ${max}`).describe(what);

const PATTERN = /^[a-z0-9*._/-]+(:[A-Za-z0-9*._-]+)?$/;
export const ruleMatchSchema = z.string('must be a string').min(1, 'is required').max(300, 'must be at most 300 characters')
  .regex(PATTERN, 'must be <repository pattern>[:<tag pattern>] with * as wildcard, e.g. library/*:latest')
  .describe('`<repository>:<tag>` pattern, `*` matching any run of characters (e.g. `library/*:latest`, `*:v*.*.*`); without `:` any tag');

export const freshnessFields = {
  max_age: seconds(MAX_POLICY_SECONDS, 'seconds a cached tag is served without asking its upstream'),
  stale_while_revalidate: seconds(MAX_POLICY_SECONDS, 'seconds past max_age during which a cached tag is served at once while one background request refreshes it; 0 = off'),
  stale_if_error: seconds(MAX_POLICY_SECONDS, 'seconds past max_age a cached tag may still be served when its upstream fails; null = without limit').nullable(),
  pin: z.boolean('must be true or false').describe('the first digest seen stays until purged: never revalidated'),
};

export const freshnessRuleSchema = z.object({
  match: ruleMatchSchema,
  max_age: freshnessFields.max_age.optional(),
  stale_while_revalidate: freshnessFields.stale_while_revalidate.optional(),
  stale_if_error: freshnessFields.stale_if_error.optional(),
  pin: freshnessFields.pin.optional(),
}, 'must be an object').strict();

/** A policy as given by a client: every field optional (left out = unchanged, or the default). */
export const freshnessInputSchema = z.object({
  ...Object.fromEntries(Object.entries(freshnessFields).map(([key, field]) => [key, field.optional()])) as {
    [K in keyof typeof freshnessFields]: z.ZodOptional<(typeof freshnessFields)[K]>;
  },
  negative_cache: seconds(MAX_NEGATIVE_CACHE_SECONDS, 'seconds an upstream\'s 404 for a manifest or blob is remembered, so a missing tag is not asked again; 0 = off').optional(),
  rules: z.array(freshnessRuleSchema).max(MAX_FRESHNESS_RULES, `must have at most ${MAX_FRESHNESS_RULES} rules`)
    .describe('first match wins; each rule overrides only the settings it names').optional(),
}, 'must be an object').strict();

export type FreshnessInput = z.infer<typeof freshnessInputSchema>;

/** The whole policy as it is stored and shown. */
export const freshnessPolicySchema = z.object({
  ...freshnessFields,
  negative_cache: freshnessInputSchema.shape.negative_cache.unwrap(),
  rules: freshnessInputSchema.shape.rules.unwrap(),
});

/** The policy an upstream with only `cache_validity_hours` has (0 = never revalidate = pinned). */
export function policyFromHours(hours: number): FreshnessPolicy {
  return {
    max_age: hours === 0 ? DEFAULT_MAX_AGE_SECONDS : hours * 3600,
    stale_while_revalidate: 0,
    stale_if_error: null,
    pin: hours === 0,
    negative_cache: DEFAULT_NEGATIVE_CACHE_SECONDS,
    rules: [],
  };
}

/** The stored policy (JSON, may be null for rows older than the column) with its defaults. */
export function storedPolicy(hours: number, json: string | null): FreshnessPolicy {
  const base = policyFromHours(hours);
  if (json === null) return base;
  try {
    const parsed = freshnessInputSchema.safeParse(JSON.parse(json));
    return parsed.success ? mergePolicy(base, parsed.data) : base;
  } catch {
    return base;
  }
}

/** `changes` over `base`; `rules` replaces the list as a whole. */
export function mergePolicy(base: FreshnessPolicy, changes: FreshnessInput): FreshnessPolicy {
  const merged = { ...base };
  for (const [key, value] of Object.entries(changes)) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  return merged;
}

/** The whole hours the old single setting shows for a policy: 0 when pinned, else max_age rounded up. */
export function hoursOfPolicy(policy: FreshnessPolicy): number {
  return policy.pin ? 0 : Math.max(1, Math.ceil(policy.max_age / 3600));
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&')).join('.*')}$`);
}

const compiled = new Map<string, { repository: RegExp; tag: RegExp }>();

function compile(match: string): { repository: RegExp; tag: RegExp } {
  let patterns = compiled.get(match);
  if (!patterns) {
    const colon = match.indexOf(':');
    patterns = colon === -1
      ? { repository: globToRegExp(match), tag: /^/ }
      : { repository: globToRegExp(match.slice(0, colon)), tag: globToRegExp(match.slice(colon + 1)) };
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(match, patterns);
  }
  return patterns;
}

/** Whether a rule's pattern names this repository (the image as upstreams know it) and tag. */
export function ruleMatches(match: string, repository: string, tag: string): boolean {
  const { repository: repositoryPattern, tag: tagPattern } = compile(match);
  return repositoryPattern.test(repository) && tagPattern.test(tag);
}

/** The settings for one tag: the first matching rule's values over the upstream's. */
export function freshnessFor(policy: FreshnessPolicy, repository: string, tag: string): TagFreshness {
  const rule = policy.rules.find((r) => ruleMatches(r.match, repository, tag)) ?? null;
  const settings: FreshnessSettings = {
    max_age: rule?.max_age ?? policy.max_age,
    stale_while_revalidate: rule?.stale_while_revalidate ?? policy.stale_while_revalidate,
    stale_if_error: rule && rule.stale_if_error !== undefined ? rule.stale_if_error : policy.stale_if_error,
    pin: rule?.pin ?? policy.pin,
  };
  return {
    maxAgeMs: settings.max_age * 1000,
    staleWhileRevalidateMs: settings.stale_while_revalidate * 1000,
    staleIfErrorMs: settings.stale_if_error === null ? null : settings.stale_if_error * 1000,
    pin: settings.pin,
    rule: rule?.match ?? null,
  };
}
