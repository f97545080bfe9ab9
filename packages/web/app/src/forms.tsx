// Form pieces shared by every page: a labelled text input wired to its field error, a select,
// a "shown once" secret panel, and a hook that runs a submit and keeps its error.
import { type FormEvent, type ReactNode, useCallback, useState } from 'react';
import { ApiError } from './api';
import { CopyButton, describedBy, ErrorBox, Field } from './lib';

/** A text input inside <Field>, with its hint and error wired for screen readers. */
export function TextField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  hint?: string;
  error?: string | undefined;
  type?: 'text' | 'password' | 'url';
  autoComplete?: string;
  inputMode?: 'numeric' | 'text';
  placeholder?: string;
  required?: boolean;
  multiline?: boolean;
}) {
  const aria = describedBy(props.id, props.hint !== undefined, props.error);
  return (
    <Field id={props.id} label={props.label} hint={props.hint} error={props.error}>
      {props.multiline === true ? (
        <textarea
          id={props.id}
          value={props.value}
          rows={3}
          placeholder={props.placeholder}
          onChange={(e) => props.onChange(e.target.value)}
          {...aria}
        />
      ) : (
        <input
          id={props.id}
          type={props.type ?? 'text'}
          value={props.value}
          autoComplete={props.autoComplete}
          inputMode={props.inputMode}
          placeholder={props.placeholder}
          aria-required={props.required === true ? true : undefined}
          onChange={(e) => props.onChange(e.target.value)}
          {...aria}
        />
      )}
    </Field>
  );
}

/** A select inside <Field>. */
export function SelectField<T extends string>(props: {
  id: string;
  label: string;
  value: T;
  onChange: (v: T) => void;
  options: readonly (readonly [T, string])[];
  hint?: string;
  error?: string | undefined;
}) {
  return (
    <Field id={props.id} label={props.label} hint={props.hint} error={props.error}>
      <select
        id={props.id}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value as T)}
        {...describedBy(props.id, props.hint !== undefined, props.error)}
      >
        {props.options.map(([v, label]) => (
          <option key={v} value={v}>
            {label}
          </option>
        ))}
      </select>
    </Field>
  );
}

/** A secret (key, password, command) shown exactly once, with a copy button. */
export function ShownOnce(props: {
  title: ReactNode;
  secret: string;
  testId?: string;
  copyLabel?: string;
  children?: ReactNode;
  onDone?: () => void;
  doneLabel?: string;
}) {
  return (
    <div className="panel panel-highlight" role="status">
      <p>{props.title}</p>
      <div className="codeline">
        <code data-testid={props.testId}>{props.secret}</code>
        <CopyButton text={props.secret} {...(props.copyLabel === undefined ? {} : { label: props.copyLabel })} />
      </div>
      {props.children}
      {props.onDone !== undefined && (
        <button type="button" className="btn btn-small" onClick={props.onDone}>
          {props.doneLabel ?? 'I have saved it'}
        </button>
      )}
    </div>
  );
}

/**
 * Run an async action from a form or button and keep its error (in words, with fields) until
 * the next attempt. `submit` prevents the browser's own form submission.
 */
export function useAction<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): {
  error: ApiError | undefined;
  busy: boolean;
  run: (...args: A) => Promise<void>;
  submit: (e: FormEvent, ...args: A) => void;
  setError: (e: ApiError | undefined) => void;
  field: (name: string) => string | undefined;
} {
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const run = useCallback(
    async (...args: A): Promise<void> => {
      setError(undefined);
      setBusy(true);
      try {
        await fn(...args);
      } catch (err) {
        setError(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
      } finally {
        setBusy(false);
      }
    },
    [fn],
  );
  return {
    error,
    busy,
    run,
    submit: (e, ...args) => {
      e.preventDefault();
      void run(...args);
    },
    setError,
    field: (name) => error?.fieldMessage(name),
  };
}

/** The form-level error: shown when the error names no field of the form (those sit at the field). */
export function FormError({
  error,
  title,
  fields = [],
}: {
  error: ApiError | undefined;
  title: string;
  fields?: readonly string[];
}) {
  if (error === undefined) return null;
  if (fields.some((f) => error.fieldMessage(f) !== undefined)) return null;
  return <ErrorBox error={error} title={title} />;
}

/** A row of radio buttons that looks like a segmented control (filters). */
export function Segmented<T extends string>(props: {
  name: string;
  legend: string;
  value: T;
  onChange: (v: T) => void;
  options: readonly T[];
  label?: (v: T) => ReactNode;
}) {
  return (
    <fieldset className="segmented">
      <legend className="sr-only">{props.legend}</legend>
      {props.options.map((o) => (
        <label key={o} className={props.value === o ? 'active' : ''}>
          <input
            type="radio"
            name={props.name}
            value={o}
            checked={props.value === o}
            onChange={() => props.onChange(o)}
          />
          {props.label === undefined ? o : props.label(o)}
        </label>
      ))}
    </fieldset>
  );
}

/** Parse "key=value, key=value" (labels, selectors, argument constraints); names the bad part. */
export function parsePairs(text: string): { pairs: Record<string, string>; error?: string } {
  const pairs: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([^=\s]+)\s*=\s*(.*)$/.exec(part);
    if (m === null) return { pairs, error: `"${part}" is not key=value` };
    pairs[m[1]!] = m[2]!;
  }
  return { pairs };
}

/** "key=value, key=value" for display. */
export function formatPairs(pairs: Record<string, string | number> | null | undefined): string {
  const e = Object.entries(pairs ?? {});
  return e.length === 0 ? '' : e.map(([k, v]) => `${k}=${v}`).join(', ');
}

/** Non-empty trimmed lines of a textarea. */
export function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Non-empty trimmed parts of a comma-separated input. */
export function commaList(text: string): string[] {
  return text
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * Every API field error at `body.<prefix>` or below, in one message; `name(rest)` says which
 * element a deeper path is about ("allow.1" → the entry on that line), so the text sits next to
 * the field it names.
 */
export function messagesUnder(
  error: ApiError | undefined,
  prefix: string,
  name: (rest: string[]) => string | undefined = () => undefined,
): string | undefined {
  if (error === undefined) return undefined;
  const full = `body.${prefix}`;
  const msgs = error.fields
    .filter((f) => f.field === full || f.field.startsWith(`${full}.`))
    .map((f) => {
      const rest = f.field === full ? [] : f.field.slice(full.length + 1).split('.');
      const what = name(rest);
      return what === undefined ? f.message : `${what}: ${f.message}`;
    });
  return msgs.length === 0 ? undefined : msgs.join('; ');
}
