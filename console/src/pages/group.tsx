// One group: its registries (with their hit ratio of the last 24 h), members and roles, group and deploy
// tokens, cleanup policy and audit events. Controls a user's role does not allow are not shown.
import { useState } from 'preact/hooks';
import { ROLES, del, get, patch, post, put, ApiError } from '../api.ts';
import type { AuditEvent, CleanupPolicy, Group, Member, Registry, Role, Statistics } from '../api.ts';
import { canMaintain, canOwn, useSession } from '../session.ts';
import { ConfirmButton, DataTable, Field, Form, FormMessage, Loading, Section, SelectField, bytes, href, percent, useForm, useLoad, when } from '../ui.tsx';
import { TokenList } from './tokens.tsx';

const TABS: [string, string, 'read' | 'own'][] = [
  ['registries', 'Registries', 'read'],
  ['members', 'Members', 'read'],
  ['tokens', 'Tokens', 'own'],
  ['cleanup', 'Cleanup policy', 'read'],
  ['audit', 'Audit events', 'own'],
];

export function GroupPage({ path, tab }: { path: string; tab: string }) {
  const session = useSession();
  const group = useLoad(() => get<Group>(`/groups/${encodeURIComponent(path)}`), [path]);
  if (!group.data) return <Loading error={group.error} />;
  const g = group.data;
  const owner = canOwn(session, g.id);
  const tabs = TABS.filter(([, , need]) => need === 'read' || owner);
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs"><a href={href('groups')}>Groups</a> / <span>{g.name}</span></nav>
      <h1>{g.name} <code class="muted">{g.path}</code></h1>
      <nav aria-label="Group sections" class="tabs">
        {tabs.map(([id, label]) => <a key={id} href={href('groups', g.path, id)} aria-current={tab === id ? 'page' : undefined}>{label}</a>)}
      </nav>
      {tab === 'registries' && <Registries group={g} />}
      {tab === 'members' && <Members group={g} />}
      {tab === 'tokens' && owner && <GroupTokens group={g} />}
      {tab === 'cleanup' && <Cleanup group={g} />}
      {tab === 'audit' && owner && <Audit group={g} />}
    </>
  );
}

function Registries({ group }: { group: Group }) {
  const session = useSession();
  const maintain = canMaintain(session, group.id);
  const registries = useLoad(async () => {
    const list = await get<Registry[]>(`/groups/${group.id}/registries?per_page=100`);
    const stats = await Promise.all(list.map((registry) => get<Statistics>(`/registries/${registry.id}/statistics`).catch(() => null)));
    return list.map((registry, i) => ({ registry, stats: stats[i] }));
  }, [group.id]);
  const form = useForm();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const create = () => form.run(async () => {
    const created = await post<Registry>(`/groups/${group.id}/registries`, { name, description: description || null });
    location.hash = href('registries', created.id);
  }, ['name', 'description']);
  return (
    <>
      <Section title="Registries">
        {!registries.data ? <Loading error={registries.error} /> : registries.data.length === 0 ? <p>No registries yet.</p> : (
          <DataTable>
            <thead><tr><th scope="col">Registry</th><th scope="col">Hit ratio (24 h)</th><th scope="col">From cache</th><th scope="col">From upstreams</th><th scope="col">Cached</th></tr></thead>
            <tbody>
              {registries.data.map(({ registry, stats }) => (
                <tr key={registry.id}>
                  <td><a href={href('registries', registry.id)}>{registry.name}</a>{registry.description && <div class="hint">{registry.description}</div>}</td>
                  <td>{stats ? percent(stats.hit_ratio) : '–'}</td>
                  <td>{stats ? bytes(stats.bytes_from_cache) : '–'}</td>
                  <td>{stats ? bytes(stats.bytes_from_upstream) : '–'}</td>
                  <td>{stats ? `${stats.cached_entries} entries, ${bytes(stats.cached_bytes)}` : '–'}</td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>
      {maintain && (
        <Section title="Create a registry">
          <Form label="Create a registry" onSubmit={create}>
            <FormMessage form={form} />
            <Field label="Name" name="name" form={form} value={name} onInput={setName} required hint={`Pulled as <host>/${group.path}/<name>/<image>; lower case, no slash.`} />
            <Field label="Description" name="description" form={form} value={description} onInput={setDescription} />
            <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Create registry</button></div>
          </Form>
        </Section>
      )}
    </>
  );
}

function Members({ group }: { group: Group }) {
  const session = useSession();
  const owner = canOwn(session, group.id) && (session.scopes === null || session.scopes.includes('api'));
  const members = useLoad(() => get<Member[]>(`/groups/${group.id}/members?per_page=100`), [group.id]);
  const form = useForm();
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const [rowError, setRowError] = useState<string | null>(null);
  const add = () => form.run(async () => {
    await post(`/groups/${group.id}/members`, { username, role });
    setUsername('');
    await members.reload();
  }, ['username', 'role']);
  const change = async (member: Member, next: Role) => {
    setRowError(null);
    try {
      await patch(`/groups/${group.id}/members/${member.user_id}`, { role: next });
    } catch (error) {
      setRowError(error instanceof ApiError ? error.message : String(error));
    }
    await members.reload();
  };
  const roleOptions = ROLES.map((r): [string, string] => [r, r]);
  return (
    <>
      <Section title="Members and roles">
        {rowError && <p class="form-error" role="alert">{rowError}</p>}
        {!members.data ? <Loading error={members.error} /> : (
          <DataTable>
            <thead><tr><th scope="col">User</th><th scope="col">Role</th>{owner && <th scope="col"><span class="visually-hidden">Actions</span></th>}</tr></thead>
            <tbody>
              {members.data.map((member) => (
                <tr key={member.user_id}>
                  <td>{member.username}</td>
                  <td>{owner ? (
                    <select aria-label={`Role of ${member.username}`} value={member.role} onChange={(event) => change(member, (event.target as HTMLSelectElement).value as Role)}>
                      {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                    </select>
                  ) : member.role}</td>
                  {owner && <td><ConfirmButton label="Remove" ariaLabel={`Remove ${member.username}`} question={`Remove ${member.username} from ${group.name}?`} confirm="Remove member"
                    onConfirm={async () => {
                      try {
                        await del(`/groups/${group.id}/members/${member.user_id}`);
                      } catch (error) {
                        setRowError(error instanceof ApiError ? error.message : String(error));
                      }
                      await members.reload();
                    }} /></td>}
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>
      {owner && (
        <Section title="Add a member">
          <Form label="Add a member" onSubmit={add}>
            <FormMessage form={form} />
            <Field label="Username" name="username" form={form} value={username} onInput={setUsername} required />
            <SelectField label="Role" name="role" form={form} value={role} options={roleOptions} onInput={(value) => setRole(value as Role)} />
            <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Add member</button></div>
          </Form>
        </Section>
      )}
    </>
  );
}

function GroupTokens({ group }: { group: Group }) {
  return (
    <>
      <TokenList title="Group access tokens" base={`/groups/${group.id}/access_tokens`} kind="group" />
      <TokenList title="Deploy tokens (pull only)" base={`/groups/${group.id}/deploy_tokens`} kind="deploy" />
    </>
  );
}

function Cleanup({ group }: { group: Group }) {
  const session = useSession();
  const owner = canOwn(session, group.id) && (session.scopes === null || session.scopes.includes('api'));
  const policy = useLoad(async () => {
    try {
      return await get<CleanupPolicy>(`/groups/${group.id}/cleanup_policy`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }, [group.id]);
  const form = useForm();
  const [keep, setKeep] = useState<string | null>(null);
  const [cadence, setCadence] = useState<string | null>(null);
  const [enabled, setEnabled] = useState<boolean | null>(null);
  if (policy.data === undefined) return <Loading error={policy.error} />;
  const current = policy.data;
  const keepValue = keep ?? String(current?.keep_n_days_after_download ?? 30);
  const cadenceValue = cadence ?? String(current?.cadence_days ?? 7);
  const enabledValue = enabled ?? current?.enabled ?? true;
  const save = () => form.run(async () => {
    await put(`/groups/${group.id}/cleanup_policy`, { enabled: enabledValue, keep_n_days_after_download: Number(keepValue), cadence_days: Number(cadenceValue) });
    await policy.reload();
  }, ['keep_n_days_after_download', 'cadence_days', 'enabled']);
  return (
    <Section title="Cleanup policy">
      {current ? (
        <dl class="facts">
          <dt>State</dt><dd>{current.enabled ? 'enabled' : 'disabled'}</dd>
          <dt>Evicts entries not downloaded for</dt><dd>{current.keep_n_days_after_download} days</dd>
          <dt>Runs every</dt><dd>{current.cadence_days} days</dd>
          <dt>Next run</dt><dd>{when(current.next_run_at, 'not scheduled')}</dd>
          <dt>Last run</dt><dd>{when(current.last_run_at)}{current.last_run_at !== null && ` (${current.last_run_deleted_entries} entries, ${bytes(current.last_run_deleted_bytes)})`}</dd>
          {current.failure_message && <><dt>Last failure</dt><dd>{current.failure_message}</dd></>}
        </dl>
      ) : <p>No cleanup policy: cached entries stay until they are purged.</p>}
      {owner && (
        <Form label="Cleanup policy" onSubmit={save}>
          <FormMessage form={form} />
          <div class="field checkbox">
            <input id="cleanup-enabled" type="checkbox" checked={enabledValue} onChange={(event) => setEnabled((event.target as HTMLInputElement).checked)} />
            <label for="cleanup-enabled">Enabled</label>
          </div>
          <Field label="Keep entries this many days after their last download" name="keep_n_days_after_download" type="number" min={1} max={365} form={form} value={keepValue} onInput={setKeep} />
          <SelectField label="Run every" name="cadence_days" form={form} value={cadenceValue} options={[1, 7, 14, 30, 90].map((days): [string, string] => [String(days), `${days} days`])} onInput={setCadence} />
          <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Save policy</button></div>
        </Form>
      )}
    </Section>
  );
}

function Audit({ group }: { group: Group }) {
  const events = useLoad(() => get<AuditEvent[]>(`/groups/${group.id}/audit_events?per_page=100`), [group.id]);
  return (
    <Section title="Audit events">
      {!events.data ? <Loading error={events.error} /> : events.data.length === 0 ? <p>No events yet.</p> : (
        <DataTable>
          <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Target</th></tr></thead>
          <tbody>
            {events.data.map((event) => (
              <tr key={event.id}><td>{when(event.created_at)}</td><td>{event.actor_name}</td><td><code>{event.action}</code></td><td>{event.target_type} {event.target_id ?? ''}</td></tr>
            ))}
          </tbody>
        </DataTable>
      )}
    </Section>
  );
}
