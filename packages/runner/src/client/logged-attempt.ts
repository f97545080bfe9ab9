import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { AuditEvent } from '@airlock/core';

/** How far back from the end of the log to look: the attempt is among the last few. */
const TAIL_BYTES = 4 * 1024 * 1024;

/**
 * The security-log event already written for request `id`, if any. A runner killed after
 * the engine recorded the attempt but before it put the result in its outbox must report
 * that attempt, not record a second one for the same request.
 */
export function findLoggedAttempt(logPath: string, id: string): AuditEvent | undefined {
  if (!existsSync(logPath)) return undefined;
  const size = statSync(logPath).size;
  const start = Math.max(0, size - TAIL_BYTES);
  const buf = Buffer.alloc(size - start);
  const fd = openSync(logPath, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  const needle = `"id":${JSON.stringify(id)}`;
  const lines = buf.toString('utf8').split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.includes(needle)) continue;
    try {
      const ev = JSON.parse(line) as AuditEvent;
      if (ev.id === id && typeof ev.hash === 'string') return ev;
    } catch {
      // a torn line: not an event
    }
  }
  return undefined;
}
