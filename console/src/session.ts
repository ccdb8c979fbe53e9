// Who is signed in, and what the console offers them: the API decides every request; these only hide
// controls a user may not use (a guest sees no edit buttons).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { LEVEL } from './api.ts';
import type { Session } from './api.ts';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('no session');
  return session;
}

function levelIn(session: Session, groupId: number): number {
  return session.memberships.find((membership) => membership.group_id === groupId)?.access_level ?? 0;
}

const writes = (session: Session) => session.scopes === null || session.scopes.includes('api');

/** Maintainers change registries, upstreams and cache entries. */
export function canMaintain(session: Session, groupId: number): boolean {
  return writes(session) && (session.user.admin || levelIn(session, groupId) >= LEVEL.maintainer);
}

/** Owners manage members, group tokens, the cleanup policy, and read audit events. */
export function canOwn(session: Session, groupId: number): boolean {
  return session.user.admin || levelIn(session, groupId) >= LEVEL.owner;
}
