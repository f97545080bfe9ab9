/**
 * A daemon in its own process, for tests that kill and restart it
 * (`node dist/testing/daemon-main.js STATE_DIR`). Prints `listening HOST:PORT`.
 */
import type { AddressInfo } from 'node:net';
import { createSandboxServer } from '../http/server.js';
import { SandboxManager } from '../manager.js';
import { testImageDir } from './harness.js';

const stateDir = process.argv[2];
if (!stateDir) throw new Error('usage: daemon-main.js STATE_DIR');
const manager = await SandboxManager.open({
  imageDir: testImageDir(),
  stateDir,
  accel: 'tcg',
  defaultMemoryMb: 192,
  snapshots: false,
  log: (l) => process.stderr.write(`[daemon] ${l}\n`),
});
const server = createSandboxServer(manager);
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as AddressInfo;
  process.stdout.write(`listening ${a.address}:${a.port}\n`);
});
process.once('SIGTERM', () => {
  server.close();
  void manager.close().then(() => process.exit(0));
});
