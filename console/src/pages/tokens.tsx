// Access tokens: the user's personal tokens (this page) and a group's access and deploy tokens (the
// group page). A new token's plaintext is shown once, with a copy button; revoking asks first.
import { useState } from 'preact/hooks';
import { ROLES, del, get, post } from '../api.ts';
import type { CreatedToken, Role, Token } from '../api.ts';
import { ConfirmButton, CopyButton, DataTable, Field, Form, FormMessage, Loading, Section, SelectField, useForm, useLoad, when } from '../ui.tsx';

const SCOPE_HELP: Record<string, string> = {
  read_virtual_registry: 'pull images (docker login, docker pull)',
  read_api: 'read the management API',
  api: 'read and change through the management API',
};

export function TokensPage() {
  return (
    <>
      <h1>Personal access tokens</h1>
      <TokenList title="Your tokens" base="/user/personal_access_tokens" kind="personal" />
    </>
  );
}

export function TokenList({ title, base, kind }: { title: string; base: string; kind: 'personal' | 'group' | 'deploy' }) {
  const tokens = useLoad(() => get<Token[]>(`${base}?per_page=100`), [base]);
  const form = useForm();
  const scopeChoices = kind === 'deploy' ? ['read_virtual_registry'] : ['read_virtual_registry', 'read_api', 'api'];
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>(['read_virtual_registry']);
  const [expires, setExpires] = useState('');
  const [role, setRole] = useState<Role>('guest');
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const create = () => form.run(async () => {
    const body: Record<string, unknown> = { name, scopes, expires_at: expires || null };
    if (kind === 'group') body.role = role;
    setCreated(await post<CreatedToken>(base, body));
    setName('');
    await tokens.reload();
  }, ['name', 'scopes', 'expires_at', 'role']);
  const toggle = (scope: string, on: boolean) => setScopes(on ? [...scopes, scope] : scopes.filter((s) => s !== scope));
  const scopeErrors = form.errors.scopes;
  return (
    <>
      <Section title={title}>
        {!tokens.data ? <Loading error={tokens.error} /> : tokens.data.length === 0 ? <p>No tokens.</p> : (
          <DataTable>
            <thead><tr><th scope="col">Name</th><th scope="col">Token</th><th scope="col">Scopes</th>{kind === 'group' && <th scope="col">Role</th>}<th scope="col">Expires</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {tokens.data.map((token) => (
                <tr key={token.id} class={token.active ? '' : 'inactive'}>
                  <td>{token.name}</td>
                  <td><code>{token.token_hint}…</code></td>
                  <td>{token.scopes.join(', ')}</td>
                  {kind === 'group' && <td>{token.role}</td>}
                  <td>{token.revoked_at !== null ? `revoked ${when(token.revoked_at)}` : when(token.expires_at, 'never')}</td>
                  <td>{when(token.last_used_at)}</td>
                  <td>{token.active && <ConfirmButton label="Revoke" ariaLabel={`Revoke ${token.name}`} question={`Revoke the token ${token.name}? Clients using it are refused at once.`} confirm="Revoke token"
                    onConfirm={async () => { await del(`${base}/${token.id}`); await tokens.reload(); }} />}</td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>
      <Section title={`Create a ${kind === 'deploy' ? 'deploy' : kind === 'group' ? 'group access' : 'personal access'} token`}>
        {created && (
          <div class="created" role="status">
            <p><strong>Your new token {created.name}.</strong> Copy it now: it is not shown again.</p>
            <p class="secret"><code data-testid="new-token">{created.token}</code> <CopyButton text={created.token} label="Copy token" /></p>
            <button type="button" class="link" onClick={() => setCreated(null)}>Done</button>
          </div>
        )}
        <Form label={`Create a ${kind} token`} onSubmit={create}>
          <FormMessage form={form} />
          <Field label="Token name" name="name" form={form} value={name} onInput={setName} required />
          <fieldset class="field" aria-describedby={scopeErrors ? `${kind}-scopes-error` : undefined}>
            <legend>Scopes</legend>
            {scopeChoices.map((scope) => (
              <div class="checkbox" key={scope}>
                <input id={`${kind}-scope-${scope}`} type="checkbox" checked={scopes.includes(scope)} onChange={(event) => toggle(scope, (event.target as HTMLInputElement).checked)} />
                <label for={`${kind}-scope-${scope}`}><code>{scope}</code>: {SCOPE_HELP[scope]}</label>
              </div>
            ))}
            {scopeErrors && <p class="field-error" id={`${kind}-scopes-error`} data-field="scopes">{scopeErrors.join(', ')}</p>}
          </fieldset>
          {kind === 'group' && <SelectField label="Role" name="role" form={form} value={role} options={ROLES.map((r): [string, string] => [r, r])} onInput={(value) => setRole(value as Role)} />}
          <Field label="Expires on" name="expires_at" type="date" form={form} value={expires} onInput={setExpires} hint="Optional: at most a year away. Empty: never expires." />
          <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Create token</button></div>
        </Form>
      </Section>
    </>
  );
}
