// Create a sandbox, run code, destroy it — in Python and in shell.
// Run: node examples/01-basic-exec.mjs
import { connect } from './_daemon.mjs';

const { client, close } = await connect();
try {
  const py = await client.create({ language_pack: 'python' });
  console.log(`created ${py.id} (${py.backend}, ${py.isolation}, boot ${py.boot_ms} ms)`);
  const r = await client.exec(py.id, { code: 'print(6*7)' });
  console.log('python says:', JSON.stringify(r));
  await client.delete(py.id);

  const sh = await client.create({ language_pack: 'shell' });
  const u = await client.exec(sh.id, { code: 'uname -r && df -h / | tail -1' });
  console.log('shell says:\n' + u.stdout);
  await client.delete(sh.id);
} finally {
  await close();
}
