// The brute-force throttle on its own (no database): free attempts, exponential backoff, what a success
// forgets, one key per IPv6 /64, and one block event per block (what the audit log records).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginThrottle, addressKey } from '../../src/auth/login-throttle.ts';
import type { BlockEvent } from '../../src/auth/login-throttle.ts';

const settings = { addressFailures: 4, usernameFailures: 3, windowSeconds: 3600, baseBlockSeconds: 2, maxBlockSeconds: 16, refusalDelayMs: 0 };

test('past the free attempts a key is blocked, and each attempt after a block doubles the next one', async () => {
  const events: BlockEvent[] = [];
  const throttle = new LoginThrottle({ settings, onBlock: (event) => events.push(event) });
  const subject = { address: '192.0.2.10', username: 'alice' };
  for (let i = 1; i <= 3; i++) assert.deepEqual(await throttle.attempt(subject), { allowed: true }, `attempt ${i}`);
  // The 4th counted attempt is past alice's 3 free ones: it goes on, but blocks alice for 2 s.
  assert.deepEqual(await throttle.attempt(subject), { allowed: true });
  assert.deepEqual(events.map((e) => [e.key, e.value, e.blockSeconds]), [['username', 'alice', 2]]);
  const refused = await throttle.attempt(subject);
  assert.equal(refused.allowed, false);
  assert.ok(!refused.allowed && refused.retryAfterSeconds >= 1 && refused.retryAfterSeconds <= 2, JSON.stringify(refused));
  // Another username from another address is not affected; alice from anywhere is.
  assert.deepEqual(await throttle.attempt({ address: '198.51.100.1', username: 'bob' }), { allowed: true });
  assert.equal((await throttle.attempt({ address: '198.51.100.2', username: 'ALICE' })).allowed, false);
});

test('the backoff doubles up to the bound', async () => {
  const events: BlockEvent[] = [];
  const throttle = new LoginThrottle({ settings: { ...settings, usernameFailures: 1, baseBlockSeconds: 1, maxBlockSeconds: 2 }, onBlock: (event) => events.push(event) });
  await throttle.attempt({ username: 'carol' });
  for (let block = 0; block < 3; block++) {
    assert.deepEqual(await throttle.attempt({ username: 'carol' }), { allowed: true }, 'the first attempt after a block goes on');
    // Waits the block out, as a patient attacker does.
    await new Promise((resolve) => setTimeout(resolve, events[events.length - 1].blockSeconds * 1000 + 50));
  }
  assert.deepEqual(events.map((event) => event.blockSeconds), [1, 2, 2]);
});

test('a success forgets the username\'s failures, but not the address\'s other failures', async () => {
  const throttle = new LoginThrottle({ settings });
  const alice = { address: '192.0.2.20', username: 'alice' };
  for (let i = 0; i < 3; i++) await throttle.attempt(alice);
  await throttle.succeeded(alice);
  // Alice starts again with her 3 free attempts; the address has counted 3 - 1 = 2 of its 4.
  for (let i = 0; i < 2; i++) assert.deepEqual(await throttle.attempt({ address: '192.0.2.20', username: `other${i}` }), { allowed: true });
  assert.deepEqual(await throttle.attempt({ address: '192.0.2.20', username: 'other2' }), { allowed: true }, 'the 4th is past the free ones but goes on');
  assert.equal((await throttle.attempt({ address: '192.0.2.20', username: 'other3' })).allowed, false, 'now the address is blocked');
});

test('an IPv6 client is one key per /64; IPv4-mapped addresses are their IPv4 address', () => {
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:db8:1:2:ffff::9'));
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
});

test('a refused attempt is held before it is answered (at most until the block ends)', async () => {
  const throttle = new LoginThrottle({ settings: { ...settings, usernameFailures: 1, refusalDelayMs: 300 } });
  await throttle.attempt({ username: 'dave' });
  await throttle.attempt({ username: 'dave' });
  const started = Date.now();
  const refused = await throttle.attempt({ username: 'dave' });
  assert.equal(refused.allowed, false);
  // A lower bound only: the hold is a timer the throttle sets itself.
  assert.ok(Date.now() - started >= 290, `held ${Date.now() - started} ms`);
});
