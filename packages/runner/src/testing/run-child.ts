// Runs one action in a separate process so a test can SIGKILL "the runner" mid-run.
// Usage: node run-child.js PACK_DIR LOG_PATH ACTION ARGS_JSON
import { testRunner } from './fixture.js';

const [packDir, logPath, action, argsJson] = process.argv.slice(2);
if (packDir === undefined || logPath === undefined || action === undefined || argsJson === undefined) {
  process.stderr.write('usage: run-child PACK_DIR LOG_PATH ACTION ARGS_JSON\n');
  process.exit(2);
}
const r = testRunner([packDir], { logPath });
const res = await r.engine.run(
  {
    action,
    args: JSON.parse(argsJson) as Record<string, unknown>,
    reason: 'child',
    principal: { type: 'local', id: 'child' },
  },
  { onOutput: (l) => void process.stdout.write(`${l.line}\n`) },
);
process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
