// Exit codes, stderr, timeouts (the whole process tree is killed), output caps,
// streaming, and typed API errors.
// Run: node examples/04-error-handling.mjs
import { connect } from './_daemon.mjs';

const { client, close } = await connect();
const { id } = await client.create({ language_pack: 'python' });
try {
  const boom = await client.exec(id, { code: 'raise ValueError("bad input")' });
  console.log(`exception → exit ${boom.exit_code}, last stderr line: ${boom.stderr.trim().split('\n').at(-1)}`);

  const slow = await client.exec(id, { code: 'import time; time.sleep(60)', timeout_ms: 1000 });
  console.log(`timeout → timed_out=${slow.timed_out}, exit ${slow.exit_code} (SIGKILL), after ${slow.duration_ms} ms`);

  const noisy = await client.exec(id, { code: "print('y' * 10_000_000)", max_output_bytes: 64 });
  console.log(`output cap → truncated=${noisy.truncated}, kept ${noisy.stdout.length} bytes`);

  process.stdout.write('streaming: ');
  await client.execStream(
    id,
    { code: 'import time\nfor i in range(5):\n    print(i, end=" ", flush=True); time.sleep(0.2)' },
    (e) => {
      if (e.type === 'stdout') process.stdout.write(e.data);
    },
  );
  console.log();

  for (const attempt of [
    () => client.create({ language_pack: 'fortran' }),
    () => client.exec(id, { code: 'x', timeout_ms: -1 }),
    () => client.exec('sb_nope', { code: 'x' }),
  ]) {
    try {
      await attempt();
    } catch (e) {
      console.log(`API error → ${e.code} (HTTP ${e.status}): ${e.message}`);
    }
  }
} finally {
  await client.delete(id);
  await close();
}
