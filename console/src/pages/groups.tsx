// The groups the user may see, and a form to create one (the creator becomes its owner).
import { useState } from 'preact/hooks';
import { get, post } from '../api.ts';
import type { Group } from '../api.ts';
import { Field, Form, FormMessage, Loading, Section, href, useForm, useLoad } from '../ui.tsx';

export function GroupsPage() {
  const groups = useLoad(() => get<Group[]>('/groups?per_page=100'));
  const form = useForm();
  const [path, setPath] = useState('');
  const [name, setName] = useState('');
  const create = () => form.run(async () => {
    const created = await post<Group>('/groups', { path, name: name || undefined });
    setPath('');
    setName('');
    location.hash = href('groups', created.path);
  }, ['path', 'name']);
  return (
    <>
      <h1>Groups</h1>
      <Section title="Your groups">
        {!groups.data ? <Loading error={groups.error} /> : groups.data.length === 0 ? (
          <p>No groups yet. Create one below: its registries are pulled as <code>&lt;host&gt;/&lt;group&gt;/&lt;registry&gt;/&lt;image&gt;</code>.</p>
        ) : (
          <ul class="list">
            {groups.data.map((group) => (
              <li key={group.id}>
                <a href={href('groups', group.path)}>{group.name}</a> <code>{group.path}</code>
                {group.description && <p class="hint">{group.description}</p>}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Create a group">
        <Form label="Create a group" onSubmit={create}>
          <FormMessage form={form} />
          <Field label="Path" name="path" form={form} value={path} onInput={setPath} required hint="One image path component, e.g. acme; it never changes." />
          <Field label="Display name" name="name" form={form} value={name} onInput={setName} hint="Optional; the path by default." />
          <div class="actions"><button type="submit" class="primary" disabled={form.busy}>Create group</button></div>
        </Form>
      </Section>
    </>
  );
}
