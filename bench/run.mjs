#!/usr/bin/env node
// Runs every bench/*.bench.mjs, prints each result with its ratio against the baseline
// measured in the same run (this machine is shared and noisy: absolute numbers drift,
// ratios much less), and writes docs/benchmarks.md.
// Usage: npm run bench [-- --quick] [-- name…] [-- --write]
// With names, docs/benchmarks.md is left alone unless --write: then only those sections are replaced.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(import.meta.url), '..');
const root = resolve(here, '..');
const quick = process.argv.includes('--quick');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

const results = [];
for (const f of files) {
  process.stdout.write(`\n== ${f}${quick ? ' (quick)' : ''}\n`);
  const mod = await import(pathToFileURL(join(here, f)).href);
  const started = Date.now();
  const r = await mod.bench({ quick });
  r.file = f;
  r.seconds = (Date.now() - started) / 1000;
  results.push(r);
  for (const row of r.rows)
    process.stdout.write(`  ${row.name.padEnd(48)} ${fmt(row.value).padStart(12)} ${row.unit}\n`);
  const ratios = Array.isArray(r.ratio) ? r.ratio : r.ratio ? [r.ratio] : [];
  for (const q of ratios) process.stdout.write(`  ratio: ${q.name} = ${q.value.toFixed(2)}×\n`);
  for (const n of r.notes ?? []) process.stdout.write(`  note: ${n}\n`);
}

function fmt(v) {
  return typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : String(v);
}

if (only.length === 0) {
  const md = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\`${quick ? ' (quick mode: smaller inputs)' : ''} on ${new Date().toISOString()}, ` +
      `Node ${process.versions.node}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}.`,
    'Each benchmark measures a baseline in the same run; compare ratios, not absolute numbers, across runs:',
    'the machine is shared and noisy. Tests never assert speed; these numbers are the record.',
    '',
  ];
  for (const r of results) md.push(...section(r));
  writeFileSync(join(root, 'docs', 'benchmarks.md'), `${md.join('\n')}\n`);
  process.stdout.write('\nwrote docs/benchmarks.md\n');
} else if (process.argv.includes('--write')) {
  // Named benches with --write: replace (or append) only their sections, keep the rest.
  const file = join(root, 'docs', 'benchmarks.md');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  for (const r of results) {
    const body = `${section(r).join('\n')}\n`;
    const start = text.indexOf(`\n## ${r.title}\n`);
    if (start < 0) text = `${text.replace(/\n*$/, '\n\n')}${body}`;
    else {
      const next = text.indexOf('\n## ', start + 1);
      text = `${text.slice(0, start + 1)}${body}${next < 0 ? '' : text.slice(next + 1)}`;
    }
  }
  writeFileSync(file, text);
  process.stdout.write(`\nupdated ${results.length} section(s) of docs/benchmarks.md\n`);
}

/** One bench's section of docs/benchmarks.md, as lines. */
function section(r) {
  const md = [
    `## ${r.title}`,
    '',
    `Source: \`bench/${r.file}\` (${r.seconds.toFixed(1)} s${quick ? ', quick mode' : ''}).`,
    '',
    '| measurement | value | unit |',
    '|---|---:|---|',
  ];
  for (const row of r.rows) md.push(`| ${row.name} | ${fmt(row.value)} | ${row.unit} |`);
  const ratios = Array.isArray(r.ratio) ? r.ratio : r.ratio ? [r.ratio] : [];
  md.push('');
  for (const q of ratios) md.push(`**Ratio** — ${q.name}: **${q.value.toFixed(2)}×**`, '');
  for (const n of r.notes ?? []) md.push(`- ${n}`);
  md.push('');
  // Hand-written analysis kept in the bench file, so a rewrite of the section keeps it.
  if (r.discussion) md.push(r.discussion.trim(), '');
  return md;
}
