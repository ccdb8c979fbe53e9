// Users of the instance (admins): create, block and unblock, delete.
import { useState } from 'preact/hooks';
import { ApiError, del, get, post } from '../api.ts';
import type { User } from '../api.ts';
import { ConfirmButton, DataTable, Field, Form, FormMessage, Loading, Section, useForm, useLoad, when } from '../ui.tsx';

export function AdminUsers() {
  const users = useLoad(() => get<User[]>('/users?per_page=100'));
  const form = useForm();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [email, setEmail] = useState('');
  const [admin, setAdmin] = useState(false);
  const [rowError, setRowError] = useState<string | null>(null);
  const create = () => form.run(async () => {
    await post('/users', { username, password, email: email || null, admin });
    setUsername('');
    setPassword('');
    setEmail('');
    await users.reload();
  }, ['username', 'password', 'email']);
  const act = async (action: () => Promise<unknown>) => {
    setRowError(null);
    try {
      await action();
    } catch (error) {
      setRowError(error instanceof ApiError ? error.message : String(error));
    }
    await users.reload();
  };
  return (
    <>
      <h1>Users</h1>
      <Section title="Users">
        {rowError && <p class="form-error" role="alert">{rowError}</p>}
        {!users.data ? <Loading error={users.error} /> : (
          <DataTable>
            <thead><tr><th scope="col">Username</th><th scope="col">Email</th><th scope="col">Admin</th><th scope="col">State</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {users.data.map((user) => (
                <tr key={user.id}>
                  <td>{user.username}</td><td>{user.email ?? ''}</td><td>{user.admin ? 'yes' : 'no'}</td><td>{user.blocked ? 'blocked' : 'active'}</td><td>{when(user.created_at)}</td>
                  <td class="row-actions">
                    <button type="button" onClick={() => act(() => post(`/users/${user.id}/${user.blocked ? 'unblock' : 'block'}`))} aria-label={`${user.blocked ? 'Unblock' : 'Block'} ${user.username}`}>{user.blocked ? 'Unblock' : 'Block'}</button>
                    <ConfirmButton label="Delete" ariaLabel={`Delete ${user.username}`} question={`Delete the user ${user.username}, with their tokens and memberships?`} confirm="Delete user" onConfirm={() => act(() => del(`/users/${user.id}`))} />
                  </td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>
      <Section title="Create a user">
        <Form label="Create a user" onSubmit={create}>
          <FormMessage form={form} />
          <Field label="Username" name="username" form={form} value={username} onInput={setUsername} required autoComplete="off" />
          <Field label="Password" name="password" type="password" form={form} value={password} onInput={setPassword} required autoComplete="new-password" hint="At least 12 characters." />
          <Field label="Email" name="email" type="email" form={form} value={email} onInput={setEmail} />
          <div class="field checkbox">
            <input id="new-user-admin" type="checkbox" checked={admin} onChange={(event) => setAdmin((event.target as HTMLInputElement).checked)} />
            <label for="new-user-admin">Instance admin</label>
          </div>
          <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Create user</button></div>
        </Form>
      </Section>
    </>
  );
}
