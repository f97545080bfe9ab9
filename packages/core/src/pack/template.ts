/** Parsing of argv template elements: literals and `{{name}}` placeholders. */
import type { TemplatePart } from './types.js';

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
const NAME = /^[a-z][a-z0-9_]{0,31}$/;

/**
 * Parse one argv string. At most one placeholder per element, so an element always maps to
 * exactly one argv entry; `{{` and `}}` are reserved (there is no escape: no legitimate
 * command line needs them, and refusing them keeps a typo from becoming a literal).
 */
export function parseTemplateString(
  text: string,
): { readonly ok: true; readonly part: TemplatePart } | { readonly ok: false; readonly message: string } {
  if (text.includes('\0')) return { ok: false, message: 'must not contain NUL' };
  const matches = [...text.matchAll(PLACEHOLDER)];
  if (matches.length > 1) return { ok: false, message: 'at most one placeholder per element' };
  const m = matches[0];
  if (m === undefined) {
    if (text.includes('{{') || text.includes('}}'))
      return { ok: false, message: "malformed placeholder: use '{{name}}'" };
    return { ok: true, part: { kind: 'literal', text } };
  }
  const arg = m[1] ?? '';
  if (!NAME.test(arg)) return { ok: false, message: `malformed placeholder '{{${arg}}}': use '{{name}}'` };
  const prefix = text.slice(0, m.index);
  const suffix = text.slice(m.index + m[0].length);
  if (prefix.includes('{{') || prefix.includes('}}') || suffix.includes('{{') || suffix.includes('}}')) {
    return { ok: false, message: "malformed placeholder: use '{{name}}'" };
  }
  return { ok: true, part: { kind: 'placeholder', arg, prefix, suffix } };
}

/** True for a placeholder that is the whole element (`"{{x}}"`), the form that needs the dash rule. */
export function isWholePlaceholder(part: TemplatePart): boolean {
  return part.kind === 'placeholder' && part.prefix === '' && part.suffix === '';
}
