// Audit chain throughput: appendEvent (canonical JSON + SHA-256 + freeze) and verifyChain,
// against a baseline of plain JSON.stringify + one node:crypto SHA-256 per event measured in
// the same run, so the ratio says what canonicalisation and validation cost on this machine.
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { appendEvent, digestArgs, verifyChain } from '../packages/core/dist/audit/index.js';

function fields(i) {
  const args = { unit: `nginx-${i % 7}.service`, lines: 50 + (i % 100), follow: false };
  return {
    id: `req-${i}`,
    time: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
    kind: 'action.attempt',
    principal: { type: 'user', id: 'u_1', name: 'Ada' },
    runner: 'web-1',
    action: 'linux.journal',
    pack_hash: `sha256:${'a'.repeat(64)}`,
    args_digest: digestArgs(args),
    args,
    reason: 'nginx returns 502 since 10:02',
    status: i % 5 === 0 ? 'failure' : 'success',
    exit_code: i % 5 === 0 ? 1 : 0,
    duration_ms: 10 + (i % 50),
    output_digest: `sha256:${'b'.repeat(64)}`,
    output_bytes: 2048 + i,
    truncated: false,
    clamped: [],
    error: null,
  };
}

function time(fn) {
  const t0 = process.hrtime.bigint();
  const out = fn();
  return { out, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Measure events/s of appendEvent and verifyChain, and the stringify+sha256 baseline. */
export async function bench({ quick }) {
  const n = quick ? 2_000 : 20_000;
  const inputs = Array.from({ length: n }, (_, i) => fields(i));
  // Warm up JIT paths on a small chain so the first measured run is not mostly compilation.
  let warm = null;
  for (let i = 0; i < 200; i++) warm = appendEvent(warm, inputs[i % n]);

  const append = time(() => {
    const events = [];
    let head = null;
    for (const f of inputs) {
      const e = appendEvent(head, f);
      events.push(e);
      head = e;
    }
    return events;
  });
  const events = append.out;

  const verify = time(() => verifyChain(events, { expectedCount: n }));
  if (!verify.out.ok) throw new Error(`bench chain did not verify: ${verify.out.message}`);

  const baseline = time(() => {
    let prev = `sha256:${'0'.repeat(64)}`;
    for (let i = 0; i < n; i++) {
      const body = { ...inputs[i], v: 1, seq: i, prev };
      prev = `sha256:${createHash('sha256')
        .update(prev + JSON.stringify(body))
        .digest('hex')}`;
    }
    return prev;
  });

  const rate = (t) => Math.round(n / t.seconds);
  const appendRate = rate(append);
  const baselineRate = rate(baseline);
  return {
    title: 'Audit chain',
    rows: [
      { name: `appendEvent (${n} events)`, value: appendRate, unit: 'events/s' },
      { name: `verifyChain (${n} events)`, value: rate(verify), unit: 'events/s' },
      { name: 'baseline: JSON.stringify + sha256 (node:crypto)', value: baselineRate, unit: 'events/s' },
    ],
    ratio: { name: 'append vs stringify+sha256 baseline', value: Math.round((appendRate / baselineRate) * 100) / 100 },
    notes: [
      'appendEvent = validate + canonical JSON (sorted keys) + SHA-256 (@noble/hashes, pure JS) + deep copy and freeze.',
      'verifyChain = shape check + canonical JSON + SHA-256 + link checks per event.',
      'The baseline skips canonicalisation and validation and uses the native SHA-256 of node:crypto.',
      `Node ${process.version}, ${n} events of about ${JSON.stringify(events[0]).length} bytes each.`,
    ],
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  console.log(JSON.stringify(await bench({ quick }), null, 2));
}
