// Small building blocks every page uses: form fields that show the API's message for their field,
// a form hook, confirmation dialogs, copy buttons, tables that stack on phones, formatting, and the hash router.
import type { ComponentChildren, InputHTMLAttributes, JSX } from 'preact';
import { useEffect, useId, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

// ---- routing ------------------------------------------------------------------------------------------

/** The path after `#`, split: `#/registries/3` → ['registries', '3']. */
export function useRoute(): string[] {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

export const href = (...parts: (string | number)[]) => `#/${parts.map((part) => encodeURIComponent(String(part))).join('/')}`;

// ---- formatting ---------------------------------------------------------------------------------------

export function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let scaled = value / 1024;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return `${scaled < 10 ? scaled.toFixed(1) : Math.round(scaled)} ${units[unit]}`;
}

export function when(at: number | null, never = 'never'): string {
  if (at === null) return never;
  return new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export const percent = (ratio: number | null) => (ratio === null ? '–' : `${Math.round(ratio * 100)} %`);

// ---- forms --------------------------------------------------------------------------------------------

export interface FormState {
  busy: boolean;
  errors: Record<string, string[]>;
  /** A message that belongs to no field (or to a field the form does not show). */
  message: string | null;
  run: (action: () => Promise<void>, fields?: string[]) => Promise<boolean>;
  clear: () => void;
}

/**
 * Runs an API call for a form: field messages go to their fields; a message for a field the form does
 * not show (or none) is shown at the top of the form.
 */
export function useForm(): FormState {
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [message, setMessage] = useState<string | null>(null);
  const run = async (action: () => Promise<void>, fields: string[] = []) => {
    setBusy(true);
    setErrors({});
    setMessage(null);
    try {
      await action();
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setErrors(error.errors);
      const unshown = Object.entries(error.errors).filter(([field]) => !fields.includes(field)).map(([field, messages]) => (field === 'base' ? messages.join(', ') : `${field}: ${messages.join(', ')}`));
      setMessage(unshown.length > 0 ? unshown.join('; ') : Object.keys(error.errors).length > 0 ? null : error.message);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, errors, message, run, clear: () => { setErrors({}); setMessage(null); } };
}

interface FieldProps {
  label: string;
  name: string;
  form: FormState;
  value: string;
  onInput: (value: string) => void;
  type?: 'text' | 'password' | 'url' | 'email' | 'number' | 'date' | 'search';
  hint?: string;
  required?: boolean;
  autoComplete?: string;
  placeholder?: string;
  min?: number;
  max?: number;
}

/** A labelled input; its API message is tied to it with aria-describedby and aria-invalid. */
export function Field(props: FieldProps) {
  const id = useId();
  const messages = props.form.errors[props.name];
  const hintId = props.hint ? `${id}-hint` : undefined;
  const errorId = messages ? `${id}-error` : undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input {...({
        id,
        name: props.name,
        type: props.type ?? 'text',
        value: props.value,
        required: props.required,
        autoComplete: props.autoComplete,
        placeholder: props.placeholder,
        min: props.min,
        max: props.max,
        'aria-invalid': messages ? 'true' : undefined,
        'aria-describedby': [errorId, hintId].filter(Boolean).join(' ') || undefined,
        onInput: (event: Event) => props.onInput((event.target as HTMLInputElement).value),
      } as InputHTMLAttributes<HTMLInputElement>)} />
      {props.hint && <p class="hint" id={hintId}>{props.hint}</p>}
      {messages && <p class="field-error" id={errorId} data-field={props.name}>{messages.join(', ')}</p>}
    </div>
  );
}

export function SelectField(props: { label: string; name: string; form: FormState; value: string; options: [string, string][]; onInput: (value: string) => void }) {
  const id = useId();
  const messages = props.form.errors[props.name];
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select id={id} name={props.name} value={props.value} aria-invalid={messages ? 'true' : undefined} aria-describedby={messages ? `${id}-error` : undefined}
        onInput={(event) => props.onInput((event.target as HTMLSelectElement).value)}>
        {props.options.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
      </select>
      {messages && <p class="field-error" id={`${id}-error`} data-field={props.name}>{messages.join(', ')}</p>}
    </div>
  );
}

export function FormMessage({ form }: { form: FormState }) {
  return form.message ? <p class="form-error" role="alert">{form.message}</p> : null;
}

export function Form(props: { label: string; onSubmit: () => void; children: ComponentChildren; class?: string }) {
  return (
    <form class={props.class ?? 'form'} aria-label={props.label} noValidate onSubmit={(event) => { event.preventDefault(); props.onSubmit(); }}>
      {props.children}
    </form>
  );
}

// ---- dialogs, copying, loading ------------------------------------------------------------------------

/** A button that asks before it acts, in a modal dialog (focus moves into it and back). */
export function ConfirmButton(props: { label: string; question: string; confirm: string; onConfirm: () => Promise<void> | void; class?: string; ariaLabel?: string }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const titleId = useId();
  return (
    <>
      <button type="button" class={props.class ?? 'danger'} aria-label={props.ariaLabel} onClick={() => dialog.current?.showModal()}>{props.label}</button>
      <dialog ref={dialog} aria-labelledby={titleId}>
        <p id={titleId}>{props.question}</p>
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>Cancel</button>
          <button type="button" class="danger" disabled={busy} onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
            } finally {
              setBusy(false);
              dialog.current?.close();
            }
          }}>{props.confirm}</button>
        </div>
      </dialog>
    </>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Without the clipboard API (plain HTTP on another host): select a hidden copy and copy that.
      const area = document.createElement('textarea');
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  return (
    <button type="button" class="copy" onClick={copy}>
      {copied ? 'Copied' : label}
      <span class="visually-hidden" aria-live="polite">{copied ? ' to the clipboard' : ''}</span>
    </button>
  );
}

export function Snippet({ title, text }: { title: string; text: string }) {
  const id = useId();
  return (
    <figure class="snippet">
      <figcaption id={id}>{title} <CopyButton text={text} label={`Copy`} /></figcaption>
      <pre aria-labelledby={id} tabIndex={0}><code>{text}</code></pre>
    </figure>
  );
}

/** Loads `load()` when `key` changes; `reload` fetches again. Only the answer to the latest load is kept. */
export function useLoad<T>(load: () => Promise<T>, key: unknown[] = []): { data: T | undefined; error: string | null; reload: () => Promise<void> } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string | null>(null);
  // Only the latest load's answer counts: answers can arrive out of order (a slow search, then a quick one).
  const latest = useRef(0);
  const reload = async () => {
    const mine = ++latest.current;
    try {
      const value = await load();
      if (mine !== latest.current) return;
      setData(value);
      setError(null);
    } catch (caught) {
      if (mine === latest.current) setError(caught instanceof Error ? caught.message : String(caught));
    }
  };
  useEffect(() => {
    setData(undefined);
    void reload();
  }, key);
  return { data, error, reload };
}

export function Loading({ error }: { error: string | null }) {
  return error ? <p class="form-error" role="alert">{error}</p> : <p aria-busy="true">Loading…</p>;
}

/**
 * A table that scrolls in its own box where it is wide, and on a phone shows each row as a block of
 * labelled cells: every body cell gets its column's header as `data-label`, which the stylesheet shows.
 */
export function DataTable(props: { children: ComponentChildren; class?: string }) {
  const table = useRef<HTMLTableElement>(null);
  useLayoutEffect(() => {
    const headers = [...table.current?.tHead?.rows[0]?.cells ?? []].map((cell) => (cell.querySelector('.visually-hidden') ? '' : cell.textContent ?? ''));
    for (const row of table.current?.tBodies[0]?.rows ?? []) {
      for (const [index, cell] of [...row.cells].entries()) cell.dataset.label = headers[index] ?? '';
    }
  });
  return <div class="table-wrap"><table ref={table} class={props.class}>{props.children}</table></div>;
}

export function Section(props: { title: string; children: ComponentChildren; actions?: JSX.Element | null; id?: string }) {
  const id = useId();
  return (
    <section class="card" aria-labelledby={id} id={props.id}>
      <header class="card-header"><h2 id={id}>{props.title}</h2>{props.actions}</header>
      {props.children}
    </section>
  );
}
