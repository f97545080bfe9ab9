/** Argument patterns: anchored implicitly, compiled once. */

const cache = new Map<string, RegExp>();

/**
 * Compile an argument pattern so that it must match the whole value. The pattern is first
 * compiled on its own: a valid regex has balanced groups, so wrapping it in `^(?:…)$` cannot
 * be escaped by a pattern such as `a)|(b`. Unicode mode, so syntax mistakes are errors.
 * Throws a SyntaxError when the pattern does not compile.
 */
export function compileArgPattern(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re === undefined) {
    new RegExp(pattern, 'u');
    re = new RegExp(`^(?:${pattern})$`, 'u');
    if (cache.size > 4096) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}
