// One registry: what its cache saves at a glance (hit ratio, bytes, pulls per hour over 24 h), its
// upstreams in the order they are asked (reorder by drag or keyboard, add, test, remove, credentials
// write-only), its cache entries (search, sort, purge) and the snippets that connect nodes to it.
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, call, del, get, patch, post } from '../api.ts';
import type { CacheEntry, ConnectionTest, Group, Instance, Link, RegistryDetail, RegistryUsage, Statistics, Upstream } from '../api.ts';
import { canMaintain, useSession } from '../session.ts';
import { ConfirmButton, DataTable, Field, Form, FormMessage, Loading, Section, SelectField, Snippet, bytes, href, percent, useForm, useLoad, when } from '../ui.tsx';
import { Chart } from './chart.tsx';

export function RegistryPage({ id }: { id: number }) {
  const session = useSession();
  const registry = useLoad(() => get<RegistryDetail>(`/registries/${id}`), [id]);
  const group = useLoad(async () => (registry.data ? get<Group>(`/groups/${registry.data.group_id}`) : undefined), [registry.data?.group_id]);
  const [version, setVersion] = useState(0);
  if (!registry.data || !group.data) return <Loading error={registry.error ?? group.error} />;
  const r = registry.data;
  const g = group.data;
  const maintain = canMaintain(session, r.group_id);
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs"><a href={href('groups')}>Groups</a> / <a href={href('groups', g.path)}>{g.name}</a> / <span>{r.name}</span></nav>
      <h1>{r.name} <code class="muted">{g.path}/{r.name}</code></h1>
      {r.description && <p>{r.description}</p>}
      <AtAGlance registryId={r.id} version={version} refresh={() => setVersion(version + 1)} />
      <Upstreams registry={r} maintain={maintain} reload={registry.reload} />
      <Entries registry={r} maintain={maintain} version={version} />
      <Connect group={g} registry={r} />
    </>
  );
}

const entries = (count: number) => `${count} ${count === 1 ? 'entry' : 'entries'}`;

/**
 * Traffic of the last 24 h (statistics), and what the cache holds now and evicted in the retained week
 * (usage). `refresh` reloads both and the cache entries below (`version` counts the refreshes).
 */
function AtAGlance({ registryId, version, refresh }: { registryId: number; version: number; refresh: () => void }) {
  const stats = useLoad(() => get<Statistics>(`/registries/${registryId}/statistics?hours=24`), [registryId, version]);
  const usage = useLoad(() => get<RegistryUsage>(`/registries/${registryId}/usage`), [registryId, version]);
  const s = stats.data;
  const u = usage.data;
  const served = s ? s.bytes_from_cache + s.bytes_from_upstream : 0;
  const days = u ? Math.round((Date.now() - u.since) / 86_400_000) : 0;
  return (
    <Section title="At a glance" actions={<button type="button" onClick={refresh}>Refresh</button>}>
      {!s || !u ? <Loading error={stats.error ?? usage.error} /> : (
        <>
          <dl class="tiles">
            <div><dt>Hit ratio (24 h)</dt><dd data-testid="hit-ratio">{percent(s.hit_ratio)}</dd><dd class="hint">{s.hits} hits, {s.misses} misses</dd></div>
            <div><dt>Served from cache (24 h)</dt><dd>{bytes(s.bytes_from_cache)}</dd><dd class="hint">{served > 0 ? `${Math.round((s.bytes_from_cache / served) * 100)} % of the bytes served` : 'nothing served yet'}</dd></div>
            <div><dt>Fetched from upstreams (24 h)</dt><dd>{bytes(s.bytes_from_upstream)}</dd></div>
            <div><dt>Stored</dt><dd data-testid="stored-bytes">{bytes(u.stored_bytes)}</dd><dd class="hint" data-testid="cached-entries">{entries(u.entries)}</dd></div>
            <div><dt>Evicted (last {days} days)</dt><dd data-testid="evicted-bytes">{bytes(u.evicted_bytes)}</dd><dd class="hint" data-testid="evicted-entries">{entries(u.evicted_entries)}, by cleanup policies and quotas</dd></div>
          </dl>
          {served > 0 && (
            <div class="ratio" role="img" aria-label={`${bytes(s.bytes_from_cache)} from the cache against ${bytes(s.bytes_from_upstream)} from upstreams`}>
              <span class="from-cache" style={{ width: `${(s.bytes_from_cache / served) * 100}%` }} />
              <span class="from-upstream" style={{ width: `${(s.bytes_from_upstream / served) * 100}%` }} />
            </div>
          )}
          <Chart hours={s.hours} />
          {u.upstreams.length > 1 && (
            <DataTable class="usage">
              <caption class="visually-hidden">Storage per upstream</caption>
              <thead><tr><th scope="col">Upstream</th><th scope="col">Stored</th><th scope="col">Entries</th><th scope="col">Evicted (last {days} days)</th></tr></thead>
              <tbody>
                {u.upstreams.map((upstream) => (
                  <tr key={upstream.upstream_id}><td>{upstream.name}</td><td>{bytes(upstream.stored_bytes)}</td><td>{upstream.entries}</td><td>{bytes(upstream.evicted_bytes)} ({entries(upstream.evicted_entries)})</td></tr>
                ))}
              </tbody>
            </DataTable>
          )}
        </>
      )}
    </Section>
  );
}

interface UpstreamHealth {
  state: string;
  consecutive_failures: number;
  last_failure: string | null;
  last_failure_at: number | null;
  circuit_open_until: number | null;
  rate_limited_until: number | null;
  revalidations_skipped: number;
}

const HEALTH_LABEL: Record<string, string> = { healthy: 'healthy', circuit_open: 'failing: requests paused', rate_limited: 'rate limited' };

/** The upstream's health and rate-limit state as the server sees it (GET /upstreams/{id}), when it reports one. */
function UpstreamState({ upstream }: { upstream: Upstream }) {
  const health = upstream.health as UpstreamHealth | undefined;
  if (!health || typeof health !== 'object') return null;
  const facts: [string, string][] = [['health', HEALTH_LABEL[health.state] ?? health.state]];
  if (health.rate_limited_until !== null && health.rate_limited_until > Date.now()) facts.push(['rate limited until', when(health.rate_limited_until)]);
  if (health.circuit_open_until !== null && health.circuit_open_until > Date.now()) facts.push(['asked again after', when(health.circuit_open_until)]);
  if (health.consecutive_failures > 0) facts.push(['failures in a row', String(health.consecutive_failures)]);
  if (health.last_failure) facts.push(['last failure', `${health.last_failure}${health.last_failure_at ? ` (${when(health.last_failure_at)})` : ''}`]);
  if (health.revalidations_skipped > 0) facts.push(['revalidations skipped', String(health.revalidations_skipped)]);
  return (
    <dl class={`state ${health.state}`} data-testid="upstream-health">
      {facts.map(([label, value]) => <div key={label}><dt>{label}</dt><dd>{value}</dd></div>)}
    </dl>
  );
}

function Upstreams({ registry, maintain, reload }: { registry: RegistryDetail; maintain: boolean; reload: () => Promise<void> }) {
  const [announcement, setAnnouncement] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<number, ConnectionTest | 'running'>>({});
  const dragged = useRef<Link | null>(null);
  const [over, setOver] = useState<number | null>(null);
  /** The link moved by keyboard, whose handle takes focus in the commit that shows the new order. */
  const focusAfterMove = useRef<number | null>(null);
  const links = registry.upstreams;
  // In that same commit, before any further key press: a browser without moveBefore() drops focus when
  // the list item moves, and a frame later would be too late for a quick second arrow key.
  useLayoutEffect(() => {
    const moved = focusAfterMove.current;
    focusAfterMove.current = null;
    if (moved !== null) document.querySelector<HTMLElement>(`[data-link="${moved}"] .handle`)?.focus();
  }, [links]);
  // Health and rate-limit state come with each upstream when the server reports them.
  const details = useLoad(() => Promise.all(links.map((link) => get<Upstream>(`/upstreams/${link.upstream_id}`).catch(() => link.upstream))), [links.map((l) => l.upstream_id).join()]);

  const move = async (link: Link, position: number, focusAfter = false) => {
    if (position < 1 || position > links.length || position === link.position) return;
    setError(null);
    try {
      await patch(`/registry_upstreams/${link.id}`, { position });
      setAnnouncement(`${link.upstream.name} moved to position ${position} of ${links.length}`);
      if (focusAfter) focusAfterMove.current = link.id;
      await reload();
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };
  const test = async (link: Link) => {
    setTests({ ...tests, [link.id]: 'running' });
    try {
      const result = await post<ConnectionTest>(`/upstreams/${link.upstream_id}/test`, {});
      setTests((now) => ({ ...now, [link.id]: result }));
    } catch (caught) {
      setTests((now) => ({ ...now, [link.id]: { success: false, status: null, message: caught instanceof Error ? caught.message : String(caught) } }));
    }
  };

  return (
    <Section title="Upstreams, in the order they are asked">
      <p class="visually-hidden" aria-live="polite">{announcement}</p>
      {error && <p class="form-error" role="alert">{error}</p>}
      {links.length === 0 ? <p>No upstreams yet: pulls answer 404 until you add one.</p> : (
        <ol class="upstreams">
          {links.map((link) => {
            const upstream = details.data?.find((u) => u.id === link.upstream_id) ?? link.upstream;
            const result = tests[link.id];
            return (
              <li key={link.id} data-link={link.id} class={over === link.id ? 'drop-target' : ''}
                draggable={maintain}
                onDragStart={(event) => { dragged.current = link; event.dataTransfer?.setData('text/plain', String(link.id)); }}
                onDragOver={(event) => { if (dragged.current && dragged.current.id !== link.id) { event.preventDefault(); setOver(link.id); } }}
                onDragLeave={() => setOver(null)}
                onDrop={(event) => { event.preventDefault(); setOver(null); const from = dragged.current; dragged.current = null; if (from) void move(from, link.position); }}
                onDragEnd={() => { dragged.current = null; setOver(null); }}>
                {maintain && (
                  <button type="button" class="handle" aria-label={`Reorder ${upstream.name}, position ${link.position} of ${links.length}: press the up or down arrow`}
                    onKeyDown={(event) => {
                      if (event.key === 'ArrowUp') { event.preventDefault(); void move(link, link.position - 1, true); }
                      if (event.key === 'ArrowDown') { event.preventDefault(); void move(link, link.position + 1, true); }
                    }}>⠿</button>
                )}
                <span class="position" aria-hidden="true">{link.position}</span>
                <div class="upstream-main">
                  <strong>{upstream.name}</strong> <code>{upstream.url}</code>
                  <div class="hint">
                    {upstream.has_credentials ? `credentials stored for ${upstream.username ?? 'a user'} (the password is never shown)` : 'anonymous'}
                    {' · '}tags revalidated after {upstream.cache_validity_hours} h
                  </div>
                  <UpstreamState upstream={upstream} />
                  {result && <p role="status" class={result === 'running' ? 'hint' : result.success ? 'ok' : 'form-error'}>
                    {result === 'running' ? 'Testing…' : `${result.success ? 'Connection works' : 'Connection failed'}: ${result.message}${result.status ? ` (HTTP ${result.status})` : ''}`}
                  </p>}
                  {maintain && <Credentials upstream={upstream} onSaved={reload} />}
                </div>
                {maintain && (
                  <div class="row-actions">
                    <button type="button" onClick={() => move(link, link.position - 1)} disabled={link.position === 1} aria-label={`Move ${upstream.name} up`}>Up</button>
                    <button type="button" onClick={() => move(link, link.position + 1)} disabled={link.position === links.length} aria-label={`Move ${upstream.name} down`}>Down</button>
                    <button type="button" onClick={() => test(link)} aria-label={`Test the connection to ${upstream.name}`}>Test</button>
                    <ConfirmButton label="Remove" ariaLabel={`Remove ${upstream.name}`} question={`Remove ${upstream.name} from ${registry.name}? The upstream stays in the group.`} confirm="Remove upstream"
                      onConfirm={async () => { await del(`/registry_upstreams/${link.id}`); await reload(); }} />
                  </div>
                )}
              </li>
            );
          })}
        </ol>
      )}
      {maintain && <AddUpstream registry={registry} onAdded={reload} />}
    </Section>
  );
}

/** Credentials are write-only: the form sets or removes them, it never shows the stored password. */
function Credentials({ upstream, onSaved }: { upstream: Upstream; onSaved: () => Promise<void> }) {
  const form = useForm();
  const [open, setOpen] = useState(false);
  const [username, setUsername] = useState(upstream.username ?? '');
  const [password, setPassword] = useState('');
  if (!open) return <button type="button" class="link" onClick={() => setOpen(true)} aria-label={`Change the credentials of ${upstream.name}`}>Change credentials</button>;
  const save = (remove: boolean) => form.run(async () => {
    await patch(`/upstreams/${upstream.id}`, remove ? { username: null, password: null } : { username, password });
    setPassword('');
    setOpen(false);
    await onSaved();
  }, ['username', 'password']);
  return (
    <Form label={`Credentials of ${upstream.name}`} onSubmit={() => save(false)} class="form inline">
      <FormMessage form={form} />
      <Field label="Upstream username" name="username" form={form} value={username} onInput={setUsername} autoComplete="off" />
      <Field label="Upstream password or token" name="password" type="password" form={form} value={password} onInput={setPassword} autoComplete="new-password" hint="Write-only: stored encrypted, never shown again." />
      <div class="actions">
        <button type="submit" class="primary" disabled={form.busy}>Save credentials</button>
        {upstream.has_credentials && <button type="button" onClick={() => save(true)}>Remove credentials</button>}
        <button type="button" onClick={() => setOpen(false)}>Cancel</button>
      </div>
    </Form>
  );
}

function AddUpstream({ registry, onAdded }: { registry: RegistryDetail; onAdded: () => Promise<void> }) {
  const form = useForm();
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [validity, setValidity] = useState('24');
  const [tested, setTested] = useState<ConnectionTest | null>(null);
  const credentials = username || password ? { username, password } : {};
  const fields = ['name', 'url', 'username', 'password', 'cache_validity_hours', 'token_url'];
  const add = () => form.run(async () => {
    await post(`/registries/${registry.id}/upstreams`, { name, url, ...credentials, cache_validity_hours: Number(validity) });
    setName(''); setUrl(''); setUsername(''); setPassword(''); setTested(null);
    await onAdded();
  }, fields);
  const test = () => form.run(async () => {
    setTested(null);
    setTested(await post<ConnectionTest>(`/groups/${registry.group_id}/upstreams/test`, { url, ...credentials }));
  }, fields);
  return (
    <Form label="Add an upstream" onSubmit={add} class="form add-upstream">
      <h3>Add an upstream</h3>
      <FormMessage form={form} />
      <Field label="Upstream name" name="name" form={form} value={name} onInput={setName} required placeholder="docker-hub" />
      <Field label="URL" name="url" type="url" form={form} value={url} onInput={setUrl} required placeholder="https://registry-1.docker.io" />
      <Field label="Username (optional)" name="username" form={form} value={username} onInput={setUsername} autoComplete="off" />
      <Field label="Password or token (optional)" name="password" type="password" form={form} value={password} onInput={setPassword} autoComplete="new-password" hint="Write-only: stored encrypted, never shown again." />
      <Field label="Revalidate tags after (hours)" name="cache_validity_hours" type="number" min={0} form={form} value={validity} onInput={setValidity} hint="0: never revalidate." />
      {tested && <p role="status" class={tested.success ? 'ok' : 'form-error'}>{tested.success ? 'Connection works' : 'Connection failed'}: {tested.message}</p>}
      <div class="actions">
        <button type="button" onClick={test} disabled={form.busy}>Test connection</button>
        <button type="submit" class="primary" disabled={form.busy}>Add upstream</button>
      </div>
    </Form>
  );
}

const ORDERS: [string, string][] = [['created_at', 'Cached'], ['downloaded_at', 'Last pulled'], ['downloads_count', 'Downloads'], ['size', 'Size']];

function Entries({ registry, maintain, version }: { registry: RegistryDetail; maintain: boolean; version: number }) {
  const [search, setSearch] = useState('');
  const [applied, setApplied] = useState('');
  const [orderBy, setOrderBy] = useState('created_at');
  const [scope, setScope] = useState('registry');
  const [page, setPage] = useState(1);
  const [notice, setNotice] = useState<string | null>(null);
  const filters = useForm();
  const base = scope === 'registry' ? `/registries/${registry.id}` : `/upstreams/${scope}`;
  const entries = useLoad(async () => {
    const query = new URLSearchParams({ page: String(page), per_page: '20', order_by: orderBy, sort: 'desc' });
    if (applied) query.set('search', applied);
    const answer = await call<CacheEntry[]>('GET', `${base}/cache_entries?${query}`);
    return { items: answer.data, total: Number(answer.headers.get('x-total') ?? answer.data.length), pages: Number(answer.headers.get('x-total-pages') ?? 1) };
  }, [base, applied, orderBy, page, version]);
  const upstreamName = (id: number) => registry.upstreams.find((link) => link.upstream_id === id)?.upstream.name ?? `upstream ${id}`;
  const purgeAll = async () => {
    const answer = await call<{ marked_entries: number }>('DELETE', `${base}/cache`);
    setNotice(`${answer.data.marked_entries} entries purged; the next pulls fetch them again.`);
    await entries.reload();
  };
  return (
    <Section title="Cache entries" actions={maintain ? <ConfirmButton label={scope === 'registry' ? 'Purge all' : 'Purge this upstream'} question={scope === 'registry' ? `Purge every cache entry of ${registry.name}? Upstreams shared with other registries keep theirs.` : `Purge every cache entry of ${upstreamName(Number(scope))}?`} confirm="Purge" onConfirm={purgeAll} /> : null}>
      {notice && <p role="status" class="ok">{notice}</p>}
      <Form label="Search cache entries" onSubmit={() => { setPage(1); setApplied(search); }} class="form filters">
        <Field label="Image or digest contains" name="search" form={filters} value={search} onInput={setSearch} placeholder="library/alpine" />
        <SelectField label="Upstream" name="scope" form={filters} value={scope} onInput={(value) => { setPage(1); setScope(value); }}
          options={[['registry', 'All upstreams'], ...registry.upstreams.map((link): [string, string] => [String(link.upstream_id), link.upstream.name])]} />
        <SelectField label="Sort by" name="order_by" form={filters} value={orderBy} onInput={(value) => { setPage(1); setOrderBy(value); }} options={ORDERS} />
        <div class="actions"><button type="submit">Search</button></div>
      </Form>
      {!entries.data ? <Loading error={entries.error} /> : entries.data.items.length === 0 ? <p>No cache entries{applied ? ` matching “${applied}”` : ''}.</p> : (
        <>
          <p class="hint" aria-live="polite">{entries.data.total} {entries.data.total === 1 ? 'entry' : 'entries'}</p>
          <DataTable class="entries">
            <thead><tr><th scope="col">Image</th><th scope="col">Upstream</th><th scope="col">Size</th><th scope="col">Last pulled</th><th scope="col">Downloads</th>{maintain && <th scope="col"><span class="visually-hidden">Actions</span></th>}</tr></thead>
            <tbody>
              {entries.data.items.map((entry) => (
                <tr key={entry.id}>
                  <td><code class="path">{entry.relative_path}</code></td>
                  <td>{upstreamName(entry.upstream_id)}</td>
                  <td class="nowrap">{bytes(entry.size)}</td>
                  <td>{when(entry.downloaded_at)}</td>
                  <td>{entry.downloads_count}</td>
                  {maintain && <td><ConfirmButton label="Purge" ariaLabel={`Purge ${entry.relative_path}`} question={`Purge ${entry.relative_path}? The next pull fetches it again.`} confirm="Purge entry"
                    onConfirm={async () => { await del(`/cache_entries/${entry.id}`); await entries.reload(); }} /></td>}
                </tr>
              ))}
            </tbody>
          </DataTable>
          {entries.data.pages > 1 && (
            <nav aria-label="Cache entry pages" class="pager">
              <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous</button>
              <span>Page {page} of {entries.data.pages}</span>
              <button type="button" disabled={page >= entries.data.pages} onClick={() => setPage(page + 1)}>Next</button>
            </nav>
          )}
        </>
      )}
    </Section>
  );
}

function Connect({ group, registry }: { group: Group; registry: RegistryDetail }) {
  const instance = useLoad(() => get<Instance>('/instance'));
  const session = useSession();
  const [image, setImage] = useState('library/alpine:3.20');
  const imageForm = useForm();
  if (!instance.data) return <Loading error={instance.error} />;
  const host = instance.data.registry_host;
  const secure = instance.data.public_url.startsWith('https:');
  const prefix = `${host}/${group.path}/${registry.name}`;
  const user = session.user.username;
  const upstreamHost = (() => {
    const first = registry.upstreams[0]?.upstream.url;
    if (!first) return 'docker.io';
    const name = new URL(first).host;
    return name === 'registry-1.docker.io' ? 'docker.io' : name;
  })();
  const scheme = secure ? 'https' : 'http';
  const docker = `docker login ${host} -u ${user}   # password: a token with read_virtual_registry\ndocker pull ${prefix}/${image}`;
  const containerd = `# /etc/containerd/certs.d/${upstreamHost}/hosts.toml\nserver = "https://${upstreamHost}"\n\n[host."${scheme}://${host}/v2/${group.path}/${registry.name}"]\n  capabilities = ["pull", "resolve"]\n  override_path = true${secure ? '' : '\n  skip_verify = true'}\n  [host."${scheme}://${host}/v2/${group.path}/${registry.name}".header]\n    authorization = "Basic <base64 of ${user}:TOKEN>"`;
  const podman = `# /etc/containers/registries.conf.d/manifold.conf\n[[registry]]\nprefix = "${upstreamHost}"\nlocation = "${upstreamHost}"\n\n[[registry.mirror]]\nlocation = "${prefix}"${secure ? '' : '\ninsecure = true'}\n\n# then: podman login ${secure ? '' : '--tls-verify=false '}${host}`;
  const kubernetes = `kubectl create secret docker-registry manifold-pull \\\n  --docker-server=${host} --docker-username=${user} --docker-password="$TOKEN"\n\n# in the pod spec:\nspec:\n  imagePullSecrets:\n    - name: manifold-pull\n  containers:\n    - name: app\n      image: ${prefix}/${image}`;
  return (
    <Section title="Connect your nodes" id="connect">
      <p>Create a token with the <code>read_virtual_registry</code> scope on the <a href={href('tokens')}>Tokens</a> page (or a deploy token of the group), then paste one of these.{!secure && ' This instance is reached over plain HTTP: Docker allows that only on localhost unless it is listed in insecure-registries; put it behind TLS and set server.publicUrl.'}</p>
      <Form label="Image for the snippets" onSubmit={() => {}} class="form inline">
        <Field label="Image in the snippets" name="image" form={imageForm} value={image} onInput={setImage} />
      </Form>
      <div class="snippets">
        <Snippet title="Docker" text={docker} />
        <Snippet title="containerd (hosts.toml)" text={containerd} />
        <Snippet title="Podman (registries.conf)" text={podman} />
        <Snippet title="Kubernetes (imagePullSecret)" text={kubernetes} />
      </div>
    </Section>
  );
}
