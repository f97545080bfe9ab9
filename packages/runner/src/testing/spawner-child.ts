// A stand-in runner for the spawn-helper death test: starts one action through the helper
// that leaves a grandchild in its group, prints the action's pid, then waits to be killed.
// Usage: node spawner-child.js PIDFILE
import { runProcess } from '../process-runner.js';

const pidfile = process.argv[2];
if (pidfile === undefined) {
  process.stderr.write('usage: spawner-child PIDFILE\n');
  process.exit(2);
}
await runProcess(
  {
    file: '/bin/sh',
    args: ['-c', `sleep 300 & echo $! > ${pidfile}; echo $$; wait`],
    env: { PATH: '/usr/bin:/bin' },
    cwd: '/',
    limits: { timeout_s: 600, output_bytes: 1 << 20 },
  },
  (_s, line) => void process.stdout.write(`${line}\n`),
  { backend: 'helper' },
);
