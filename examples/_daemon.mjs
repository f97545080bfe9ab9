// Shared by the examples: use the daemon at $AIRLOCK_SANDBOX_ADDR (default 127.0.0.1:7777)
// if one is running, else start one inside this process so every example runs offline
// with nothing but the built repo and the guest images.
import { existsSync } from 'node:fs';
import {
  createSandboxServer,
  defaultDaemonAddress,
  imageCacheDir,
  SandboxClient,
  SandboxManager,
} from '@airlock/sandbox';

/** Returns a client and a `close()` that stops the in-process daemon if we started one. */
export async function connect() {
  const address = defaultDaemonAddress();
  const client = new SandboxClient(address);
  try {
    await client.info();
    return { client, close: async () => {} };
  } catch {
    // No daemon running: start one here.
  }
  const imageDir =
    process.env.AIRLOCK_IMAGE_CACHE ??
    (existsSync('/var/cache/airlock-images/manifest.json') ? '/var/cache/airlock-images' : imageCacheDir());
  process.stderr.write(`(no daemon at ${address}: starting one in this process, images from ${imageDir})\n`);
  const manager = await SandboxManager.open({
    imageDir,
    buildImages: true,
    progress: (s, n, m) => process.stderr.write(`[images ${s}/${n}] ${m}\n`),
  });
  const server = createSandboxServer(manager);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const local = new SandboxClient(`127.0.0.1:${server.address().port}`);
  return {
    client: local,
    close: async () => {
      await manager.close();
      server.closeAllConnections();
      server.close();
    },
  };
}
