// First start on an empty database: create the admin user.
import type { Db } from '../db/connect.ts';
import { generatePassword, hashPassword } from '../auth/secrets.ts';

export const ADMIN_USERNAME = 'admin';

/**
 * Creates the admin user when there is no user at all. Returns the password when it was generated
 * (to be printed once), null when a configured password was used or users already existed.
 */
export async function ensureAdminUser(db: Db, configuredPassword: string | undefined): Promise<{ created: boolean; generatedPassword: string | null }> {
  const existing = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (existing) return { created: false, generatedPassword: null };
  const password = configuredPassword ?? generatePassword();
  const now = Date.now();
  const inserted = await db.insertInto('users')
    .values({ username: ADMIN_USERNAME, email: null, password_hash: await hashPassword(password), admin: 1, blocked: 0, created_at: now, updated_at: now })
    // Another replica starting at the same moment may have created it: the unique username decides.
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) return { created: false, generatedPassword: null };
  return { created: true, generatedPassword: configuredPassword ? null : password };
}
