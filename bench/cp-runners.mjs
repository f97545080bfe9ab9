// Runners for bench/control-plane.bench.mjs, in their own process (as on a real host: a runner
// never shares an event loop with the control plane). Reads one JSON argument:
//   { "url": "...", "packDir": "...", "concurrency": 8, "runners": [{ "name", "token", "logPath" }] }
// Prints `ready` once every runner is connected. Each line `cpu` on stdin is answered with one
// JSON line: this process's CPU ms and the spawn helper's (its own + its reaped actions').
import { createInterface } from 'node:readline';
import { defaultRunnerConfig, startRunner } from '../packages/runner/dist/index.js';
import { helperCpuMs } from './helper-cpu.mjs';

const spec = JSON.parse(process.argv[2]);
const runners = spec.runners.map((r) =>
  startRunner({
    config: {
      ...defaultRunnerConfig({}),
      name: r.name,
      packDirs: [spec.packDir],
      logPath: r.logPath,
      concurrency: spec.concurrency,
    },
    serverUrl: spec.url,
    token: r.token,
  }),
);
const end = Date.now() + 30_000;
while (runners.some((r) => !r.client.connected)) {
  if (Date.now() > end) {
    process.stderr.write('runners did not connect within 30 s\n');
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write('ready\n');

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'cpu') return;
  const c = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ nodeMs: (c.user + c.system) / 1000, helperMs: helperCpuMs() })}\n`);
});
const stop = () => {
  for (const r of runners) r.stop();
  setTimeout(() => process.exit(0), 200);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
