// The shell language pack: busybox utilities, pipes, exit codes, an explicit argv.
// Run: node examples/02-shell-exec.mjs
import { connect } from './_daemon.mjs';

const { client, close } = await connect();
const { id } = await client.create({ language_pack: 'shell' });
try {
  const pipeline = await client.exec(id, { code: 'seq 1 10 | awk "{s+=\\$1} END {print s}"' });
  console.log('sum 1..10 =', pipeline.stdout.trim());
  const failing = await client.exec(id, { code: 'ls /does-not-exist' });
  console.log(`exit ${failing.exit_code}, stderr: ${failing.stderr.trim()}`);
  // argv runs a program directly, with no shell parsing at all.
  const argv = await client.exec(id, { argv: ['printf', '%s|', 'a b', '$HOME', ';rm -rf /'] });
  console.log('argv stays literal:', argv.stdout);
  const net = await client.exec(id, { code: 'ls /sys/class/net' });
  console.log('network devices:', net.stdout.trim(), '(loopback only: there is no NIC)');
} finally {
  await client.delete(id);
  await close();
}
