// Mirror routes (admins): an upstream host as clients name it (docker.io, ghcr.io) → the registry that
// answers for it, for nodes configured with Manifold as a mirror. Shown when the server has the API
// (/api/v1/mirror_routes); says so when it does not.
import { useState } from 'preact/hooks';
import { ApiError, del, get, patch, post } from '../api.ts';
import type { Group, Registry } from '../api.ts';
import { ConfirmButton, DataTable, Field, Form, FormMessage, Loading, Section, SelectField, useForm, useLoad, when } from '../ui.tsx';

interface MirrorRoute { id: number; host: string; registry_id: number | null; registry_path: string | null; default: boolean; updated_at: number }

export function MirrorRoutesPage() {
  const routes = useLoad(async () => {
    try {
      return await get<MirrorRoute[]>('/mirror_routes?per_page=100');
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  });
  const registries = useLoad(async () => {
    const groups = await get<Group[]>('/groups?per_page=100');
    const lists = await Promise.all(groups.map(async (group) => (await get<Registry[]>(`/groups/${group.id}/registries?per_page=100`)).map((registry): [string, string] => [String(registry.id), `${group.path}/${registry.name}`])));
    return lists.flat();
  });
  const form = useForm();
  const [host, setHost] = useState('');
  const [registryId, setRegistryId] = useState('');
  const [isDefault, setDefault] = useState(false);
  const [rowError, setRowError] = useState<string | null>(null);
  const act = async (action: () => Promise<unknown>) => {
    setRowError(null);
    try {
      await action();
    } catch (error) {
      setRowError(error instanceof ApiError ? error.message : String(error));
    }
    await routes.reload();
  };
  const create = () => form.run(async () => {
    await post('/mirror_routes', { host, registry_id: Number(registryId || registries.data?.[0]?.[0]), default: isDefault });
    setHost('');
    await routes.reload();
  }, ['host', 'registry_id', 'default']);
  return (
    <>
      <h1>Mirror routes</h1>
      <Section title="Routes">
        {rowError && <p class="form-error" role="alert">{rowError}</p>}
        {routes.data === undefined ? <Loading error={routes.error} /> : routes.data === null ? (
          <p>This server has no mirror routes API.</p>
        ) : routes.data.length === 0 ? <p>No mirror routes: nodes reach registries by their path only.</p> : (
          <DataTable>
            <thead><tr><th scope="col">Host</th><th scope="col">Registry</th><th scope="col">Default</th><th scope="col">Changed</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {routes.data.map((route) => (
                <tr key={route.id}>
                  <td><code>{route.host}</code></td>
                  <td>{route.registry_path ?? <span class="form-error">registry deleted: requests are refused</span>}</td>
                  <td>{route.default ? 'yes' : 'no'}</td>
                  <td>{when(route.updated_at)}</td>
                  <td class="row-actions">
                    {!route.default && <button type="button" aria-label={`Make ${route.host} the default route`} onClick={() => act(() => patch(`/mirror_routes/${route.id}`, { default: true }))}>Make default</button>}
                    <ConfirmButton label="Delete" ariaLabel={`Delete the route of ${route.host}`} question={`Delete the route of ${route.host}? Mirror requests for it are refused afterwards.`} confirm="Delete route" onConfirm={() => act(() => del(`/mirror_routes/${route.id}`))} />
                  </td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>
      {routes.data !== null && routes.data !== undefined && (
        <Section title="Add a route">
          <Form label="Add a mirror route" onSubmit={create}>
            <FormMessage form={form} />
            <Field label="Upstream host" name="host" form={form} value={host} onInput={setHost} required placeholder="docker.io" hint="As clients name it: docker.io, ghcr.io, quay.io." />
            {registries.data ? (
              <SelectField label="Registry" name="registry_id" form={form} value={registryId || (registries.data[0]?.[0] ?? '')} options={registries.data} onInput={setRegistryId} />
            ) : <Loading error={registries.error} />}
            <div class="field checkbox">
              <input id="route-default" type="checkbox" checked={isDefault} onChange={(event) => setDefault((event.target as HTMLInputElement).checked)} />
              <label for="route-default">Default route (requests without ns, as Docker's registry-mirrors sends them)</label>
            </div>
            <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Add route</button></div>
          </Form>
        </Section>
      )}
    </>
  );
}
