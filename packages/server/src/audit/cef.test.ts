import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AIRLOCK_VERSION } from '@airlock/core';
import { cefHeader, cefLine, cefSeverity, cefValue } from './cef.js';

/** Split a CEF extension into key/value pairs, honouring the escapes. */
function parseExtension(ext: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z0-9]+)=((?:\\.|[^\\=])*?)(?= [A-Za-z0-9]+=|$)/g;
  for (const m of ext.matchAll(re)) {
    out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_s, c: string) =>
      c === 'n' ? '\n' : c === 'r' ? '\r' : c,
    );
  }
  return out;
}

describe('CEF', () => {
  test('escapes extension values: backslash, equals, newlines', () => {
    assert.equal(cefValue('a=b\\c\nd\re|f'), 'a\\=b\\\\c\\nd\\re|f');
  });

  test('escapes header fields: backslash and pipe; newlines become spaces', () => {
    assert.equal(cefHeader('a|b\\c\nd'), 'a\\|b\\\\c d');
  });

  test('a full line: header, severity, mapped fields, and round-trippable escaping', () => {
    const line = cefLine(
      {
        seq: 7,
        id: 'req-1',
        time: '2025-01-01T00:00:00.000Z',
        kind: 'run.result',
        principal: { type: 'user', id: 'u1', name: 'ali=ce\\x' },
        runner: 'web|1',
        action: 'linux.uptime',
        status: 'failure',
        pack_hash: null,
        reason: 'line1\nline2 key=value',
        exit_code: 2,
        duration_ms: 12.5,
        error: null,
        hash: `sha256:${'a'.repeat(64)}`,
      },
      'org-1',
    );
    assert.equal(line.includes('\n'), false);
    // The header has 7 fields ended by unescaped pipes; the extension may hold raw pipes.
    const parts: string[] = [];
    let rest = line;
    for (let i = 0; i < 7; i++) {
      const m = /^((?:\\.|[^\\|])*)\|/.exec(rest);
      assert.ok(m !== null);
      parts.push(m[1] as string);
      rest = rest.slice(m[0].length);
    }
    parts.push(rest);
    assert.deepEqual(parts.slice(0, 7), [
      'CEF:0',
      'airlock',
      'airlock',
      AIRLOCK_VERSION,
      'run.result',
      'run.result linux.uptime failure',
      '5',
    ]);
    const ext = parseExtension(parts[7] as string);
    assert.equal(ext['rt'], String(Date.parse('2025-01-01T00:00:00.000Z')));
    assert.equal(ext['suser'], 'ali=ce\\x');
    assert.equal(ext['suid'], 'u1');
    assert.equal(ext['act'], 'linux.uptime');
    assert.equal(ext['outcome'], 'failure');
    assert.equal(ext['cs1Label'], 'runner');
    assert.equal(ext['cs1'], 'web|1');
    assert.equal(ext['cs2'], `sha256:${'a'.repeat(64)}`);
    assert.equal(ext['reason'], 'line1\nline2 key=value');
    assert.equal(ext['cn1'], '7');
    assert.equal(ext['cn2'], '2');
    assert.equal(ext['cs4'], 'org-1');
    assert.equal('cs3' in ext, false, 'absent values and their labels are left out');
    assert.equal('cs3Label' in ext, false);
  });

  test('a pipe in the kind is escaped in the header', () => {
    const line = cefLine({ kind: 'x|y', status: 'success', seq: 1 }, null);
    assert.match(line, /^CEF:0\|airlock\|airlock\|[^|]+\|x\\\|y\|x\\\|y success\|2\|/);
  });

  test('severity: status, auth failures, trust rejections, chain alerts', () => {
    assert.equal(cefSeverity('run.result', 'success'), 2);
    assert.equal(cefSeverity('run.result', 'validation_failed'), 6);
    assert.equal(cefSeverity('auth.login', 'failure'), 7);
    assert.equal(cefSeverity('pack.rejected', 'success'), 7);
    assert.equal(cefSeverity('runner.chain_gap', 'success'), 5);
    assert.equal(cefSeverity('runner.chain_fork', 'error'), 9);
    assert.equal(cefSeverity('runner.log_truncated', 'error'), 9);
  });
});
