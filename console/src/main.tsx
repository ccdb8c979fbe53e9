// The console's entry: restores the session (GET /api/v1/session), shows the sign-in form without one,
// and otherwise the page the location's hash names.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, get, post, useCsrfToken, whenSignedOut } from './api.ts';
import type { Session } from './api.ts';
import { AdminUsers } from './pages/admin-users.tsx';
import { GroupPage } from './pages/group.tsx';
import { GroupsPage } from './pages/groups.tsx';
import { MirrorRoutesPage } from './pages/mirror-routes.tsx';
import { RegistryPage } from './pages/registry.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { SessionContext } from './session.ts';
import { Field, Form, FormMessage, href, useForm, useRoute } from './ui.tsx';
import './style.css';

function SignIn({ onSignedIn, notice }: { onSignedIn: (session: Session) => void; notice: string | null }) {
  const form = useForm();
  const [withToken, setWithToken] = useState(false);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const submit = () => form.run(async () => {
    onSignedIn(await post<Session>('/session', withToken ? { token } : { username, password }));
  }, ['username', 'password', 'token']);
  return (
    <main id="main" class="sign-in">
      <h1>Sign in to Manifold</h1>
      {notice && <p class="notice" role="status">{notice}</p>}
      <Form label="Sign in" onSubmit={submit} class="form card">
        <FormMessage form={form} />
        {withToken ? (
          <Field label="Personal access token" name="token" type="password" form={form} value={token} onInput={setToken} autoComplete="off" hint="A token with the api scope (or read_api to look only)." />
        ) : (
          <>
            <Field label="Username" name="username" form={form} value={username} onInput={setUsername} autoComplete="username" required />
            <Field label="Password" name="password" type="password" form={form} value={password} onInput={setPassword} autoComplete="current-password" required />
          </>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={form.busy}>Sign in</button>
          <button type="button" class="link" onClick={() => { form.clear(); setWithToken(!withToken); }}>
            {withToken ? 'Use a username and password' : 'Use a token instead'}
          </button>
        </div>
      </Form>
    </main>
  );
}

function Page() {
  const route = useRoute();
  const [first, second] = route;
  if (first === 'groups' && second) return <GroupPage path={second} tab={route[2] ?? 'registries'} />;
  if (first === 'registries' && second) return <RegistryPage id={Number(second)} />;
  if (first === 'tokens') return <TokensPage />;
  if (first === 'users') return <AdminUsers />;
  if (first === 'mirror-routes') return <MirrorRoutesPage />;
  return <GroupsPage />;
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const current = (name: string) => (route[0] ?? 'groups') === name ? 'page' : undefined;
  return (
    <>
      <a class="skip" href="#main" onClick={(event) => { event.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <header class="top">
        <a class="brand" href={href('groups')}>Manifold</a>
        <nav aria-label="Main">
          <a href={href('groups')} aria-current={current('groups')}>Groups</a>
          <a href={href('tokens')} aria-current={current('tokens')}>Tokens</a>
          {session.user.admin && <a href={href('users')} aria-current={current('users')}>Users</a>}
          {session.user.admin && <a href={href('mirror-routes')} aria-current={current('mirror-routes')}>Mirror routes</a>}
        </nav>
        <div class="who">
          <span aria-label={`Signed in as ${session.user.username}`}>{session.user.username}</span>
          <button type="button" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page />
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const adopt = (next: Session | null) => {
    useCsrfToken(next?.csrf_token ?? '');
    setSession(next);
  };
  useEffect(() => {
    whenSignedOut(() => {
      setNotice('Your session has ended. Please sign in again.');
      adopt(null);
    });
    get<Session>('/session').then(adopt, (error: unknown) => {
      if (!(error instanceof ApiError) || (error.status !== 401 && error.status !== 404)) setNotice(error instanceof Error ? error.message : String(error));
      adopt(null);
    });
  }, []);
  if (session === undefined) return <p aria-busy="true">Loading…</p>;
  if (session === null) return <SignIn notice={notice} onSignedIn={(next) => { setNotice(null); adopt(next); }} />;
  const signOut = async () => {
    await del('/session').catch(() => {});
    setNotice('You have signed out.');
    adopt(null);
  };
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} onSignOut={signOut} />
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
