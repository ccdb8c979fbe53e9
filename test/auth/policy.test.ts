// The policy table (DESIGN §5), written out independently of src/auth/policy.ts: a role-minimum table and a
// scope table, combined here, checked against can() and canSee() for every actor kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANONYMOUS, SYSTEM, can, canSee } from '../../src/auth/policy.ts';
import type { Ability, Actor, Channel, Scope, Subject, TokenGrant } from '../../src/auth/policy.ts';

const NOW = Date.UTC(2025, 0, 1);
const GROUP = 7;
const OTHER_GROUP = 8;

const ABILITIES: Ability[] = [
  'read_virtual_registry', 'create_virtual_registry', 'update_virtual_registry', 'destroy_virtual_registry',
  'admin_virtual_registry', 'create_group', 'admin_instance',
];
const GROUP_ABILITIES = new Set<Ability>(ABILITIES.filter((a) => a !== 'create_group' && a !== 'admin_instance'));
const CHANNELS: Channel[] = ['registry', 'api'];
const SUBJECTS: [string, Subject][] = [['own group', { groupId: GROUP }], ['other group', { groupId: OTHER_GROUP }], ['instance', 'instance']];

/** Roles with their access level; `undefined` = not a member. */
const ROLES: [string, number | undefined][] = [
  ['non-member', undefined], ['guest', 10], ['reporter', 20], ['developer', 30], ['maintainer', 40], ['owner', 50],
];

/** DESIGN §5: the lowest role that has each group ability. */
const ROLE_MINIMUM: Record<string, number> = {
  read_virtual_registry: 10,
  create_virtual_registry: 40,
  update_virtual_registry: 40,
  destroy_virtual_registry: 40,
  admin_virtual_registry: 50,
};

const ALL = ABILITIES;
const READ: Ability[] = ['read_virtual_registry'];
/** DESIGN §5: which abilities each token scope leaves, per channel. `session` = no token (password login). */
const SCOPE_TABLE: Record<'session' | Scope, Record<Channel, Ability[]>> = {
  session: { registry: ALL, api: ALL },
  api: { registry: ALL, api: ALL },
  read_api: { registry: [], api: READ },
  read_virtual_registry: { registry: READ, api: [] },
};
const SCOPE_CASES: ('session' | Scope)[] = ['session', 'api', 'read_api', 'read_virtual_registry'];

const grant = (scopes: Scope[], extra: Partial<TokenGrant> = {}): TokenGrant => ({ id: 1, scopes, expiresAt: null, revokedAt: null, ...extra });

function user(level: number | undefined, scope: 'session' | Scope, channel: Channel, extra: { admin?: boolean; blocked?: boolean; token?: TokenGrant } = {}): Actor {
  return {
    kind: 'user',
    userId: 1,
    username: 'someone',
    admin: extra.admin ?? false,
    blocked: extra.blocked ?? false,
    memberships: new Map(level === undefined ? [] : [[GROUP, level as 10]]),
    token: extra.token ?? (scope === 'session' ? null : grant([scope])),
    channel,
  };
}

const scopeAllows = (scope: 'session' | Scope, ability: Ability, channel: Channel) => SCOPE_TABLE[scope][channel].includes(ability);

/** What a member (or non-member) may do, before scopes. */
function roleAllows(level: number | undefined, ability: Ability, subject: Subject): boolean {
  if (ability === 'create_group') return true;
  if (ability === 'admin_instance') return false;
  if (subject === 'instance' || subject.groupId !== GROUP || level === undefined) return false;
  return level >= ROLE_MINIMUM[ability];
}

test('users: every role × ability × scope × channel × subject', () => {
  let checked = 0;
  for (const [roleName, level] of ROLES) {
    for (const scope of SCOPE_CASES) {
      for (const channel of CHANNELS) {
        const actor = user(level, scope, channel);
        for (const ability of ABILITIES) {
          for (const [subjectName, subject] of SUBJECTS) {
            const expected = scopeAllows(scope, ability, channel) && roleAllows(level, ability, subject);
            assert.equal(can(actor, ability, subject, NOW), expected, `${roleName} ${scope} ${channel} ${ability} on ${subjectName}`);
            checked++;
          }
        }
        assert.equal(canSee(actor, { groupId: GROUP }, NOW), level !== undefined, `${roleName} sees own group`);
        assert.equal(canSee(actor, { groupId: OTHER_GROUP }, NOW), false, `${roleName} does not see another group`);
        assert.equal(canSee(actor, 'instance', NOW), true);
      }
    }
  }
  assert.equal(checked, ROLES.length * SCOPE_CASES.length * CHANNELS.length * ABILITIES.length * SUBJECTS.length);
});

test('instance admins may do everything their token scope allows, in any group', () => {
  for (const scope of SCOPE_CASES) {
    for (const channel of CHANNELS) {
      const actor = user(undefined, scope, channel, { admin: true });
      for (const ability of ABILITIES) {
        for (const [subjectName, subject] of SUBJECTS) {
          assert.equal(can(actor, ability, subject, NOW), scopeAllows(scope, ability, channel), `admin ${scope} ${channel} ${ability} on ${subjectName}`);
        }
      }
      assert.equal(canSee(actor, { groupId: OTHER_GROUP }, NOW), true);
    }
  }
});

test('anonymous may do and see nothing; the system may do everything', () => {
  for (const ability of ABILITIES) {
    for (const [, subject] of SUBJECTS) {
      assert.equal(can(ANONYMOUS, ability, subject, NOW), false);
      assert.equal(can(SYSTEM, ability, subject, NOW), true);
    }
  }
  for (const [, subject] of SUBJECTS) {
    assert.equal(canSee(ANONYMOUS, subject, NOW), false);
    assert.equal(canSee(SYSTEM, subject, NOW), true);
  }
});

test('a blocked user may do and see nothing, even an owner or an admin', () => {
  for (const admin of [false, true]) {
    for (const channel of CHANNELS) {
      const actor = user(50, 'session', channel, { admin, blocked: true });
      for (const ability of ABILITIES) {
        for (const [, subject] of SUBJECTS) assert.equal(can(actor, ability, subject, NOW), false, `${ability}`);
      }
      for (const [, subject] of SUBJECTS) assert.equal(canSee(actor, subject, NOW), false);
    }
  }
});

test('an expired or revoked personal token grants and shows nothing; one expiring later still works', () => {
  const unusable: [string, TokenGrant][] = [
    ['expired', grant(['api'], { expiresAt: NOW - 1 })],
    ['expiring now', grant(['api'], { expiresAt: NOW })],
    ['revoked', grant(['api'], { revokedAt: NOW - 1000 })],
  ];
  for (const [name, token] of unusable) {
    for (const admin of [false, true]) {
      const actor = user(50, 'api', 'api', { admin, token });
      for (const ability of ABILITIES) {
        for (const [, subject] of SUBJECTS) assert.equal(can(actor, ability, subject, NOW), false, `${name} ${ability}`);
      }
      for (const [, subject] of SUBJECTS) assert.equal(canSee(actor, subject, NOW), false, `${name} sees`);
    }
  }
  const later = user(50, 'api', 'api', { token: grant(['api'], { expiresAt: NOW + 1 }) });
  assert.equal(can(later, 'admin_virtual_registry', { groupId: GROUP }, NOW), true);
  assert.equal(canSee(later, { groupId: GROUP }, NOW), true);
});

test('group tokens act with their role and scopes in their own group only', () => {
  for (const [roleName, level] of ROLES) {
    if (level === undefined) continue;
    for (const scope of SCOPE_CASES) {
      if (scope === 'session') continue;
      for (const channel of CHANNELS) {
        const actor: Actor = { kind: 'group_token', groupId: GROUP, accessLevel: level as 10, token: grant([scope]), channel };
        for (const ability of ABILITIES) {
          for (const [subjectName, subject] of SUBJECTS) {
            const expected: boolean = GROUP_ABILITIES.has(ability) && scopeAllows(scope, ability, channel) && roleAllows(level, ability, subject);
            assert.equal(can(actor, ability, subject, NOW), expected, `group token ${roleName} ${scope} ${channel} ${ability} on ${subjectName}`);
          }
        }
        assert.equal(canSee(actor, { groupId: GROUP }, NOW), true);
        assert.equal(canSee(actor, { groupId: OTHER_GROUP }, NOW), false);
      }
    }
  }
  for (const token of [grant(['api'], { expiresAt: NOW - 1 }), grant(['api'], { revokedAt: NOW - 1 })]) {
    const actor: Actor = { kind: 'group_token', groupId: GROUP, accessLevel: 50, token, channel: 'registry' };
    for (const ability of ABILITIES) assert.equal(can(actor, ability, { groupId: GROUP }, NOW), false);
    assert.equal(canSee(actor, { groupId: GROUP }, NOW), false);
  }
});

test('deploy tokens pull from their own group through the registry, nothing else', () => {
  for (const scopes of [['read_virtual_registry'], ['api'], ['read_api']] as Scope[][]) {
    for (const channel of CHANNELS) {
      const actor: Actor = { kind: 'deploy_token', groupId: GROUP, token: grant(scopes), channel };
      for (const ability of ABILITIES) {
        for (const [subjectName, subject] of SUBJECTS) {
          const expected = scopes.includes('read_virtual_registry') && channel === 'registry' && ability === 'read_virtual_registry' && subjectName === 'own group';
          assert.equal(can(actor, ability, subject, NOW), expected, `deploy ${scopes} ${channel} ${ability} on ${subjectName}`);
        }
      }
      assert.equal(canSee(actor, { groupId: GROUP }, NOW), true);
      assert.equal(canSee(actor, { groupId: OTHER_GROUP }, NOW), false);
    }
  }
  for (const token of [grant(['read_virtual_registry'], { expiresAt: NOW - 1 }), grant(['read_virtual_registry'], { revokedAt: NOW - 1 })]) {
    const actor: Actor = { kind: 'deploy_token', groupId: GROUP, token, channel: 'registry' };
    assert.equal(can(actor, 'read_virtual_registry', { groupId: GROUP }, NOW), false);
    assert.equal(canSee(actor, { groupId: GROUP }, NOW), false);
  }
});
