/** Duration parsing: `30s`, `5m`, `1h30m`, `7d`, `250ms` (rounded up), or plain seconds. */

const UNITS = ['d', 'h', 'm', 's', 'ms'] as const;
const UNIT_MS: Record<(typeof UNITS)[number], number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
// `ms` before `m` so that `250ms` is not read as 250 minutes followed by garbage.
const COMPONENT = /([0-9]{1,16})(ms|d|h|m|s)/y;

/**
 * Parse a duration into whole seconds, or `undefined` when it is not one. Units appear at
 * most once, largest first (`1h30m`, not `30m1h`); sub-second remainders round up so that
 * `250ms` is 1 s and never 0 (a zero timeout would mean "no time at all").
 */
export function parseDuration(text: string): number | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return undefined;
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  let pos = 0;
  let lastUnit = -1;
  let totalMs = 0;
  while (pos < text.length) {
    COMPONENT.lastIndex = pos;
    const m = COMPONENT.exec(text);
    if (m === null) return undefined;
    const unit = m[2] as (typeof UNITS)[number];
    const idx = UNITS.indexOf(unit);
    if (idx <= lastUnit) return undefined;
    lastUnit = idx;
    totalMs += Number(m[1]) * UNIT_MS[unit];
    if (!Number.isSafeInteger(totalMs)) return undefined;
    pos = COMPONENT.lastIndex;
  }
  return Math.ceil(totalMs / 1000);
}

/** Format whole seconds compactly for messages: 90 → `1m30s`, 86400 → `1d`, 0 → `0s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return `${seconds}s`;
  let rest = Math.floor(seconds);
  let out = '';
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}
