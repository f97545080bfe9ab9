import { chmodSync, chownSync, createReadStream, createWriteStream, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { SandboxError } from '../../errors.js';
import { connectUnix } from '../process-util.js';
import { Qmp } from './qmp.js';

/**
 * Saving and restoring a QEMU guest's whole state (QMP `migrate`, `-incoming`).
 * The stream goes over Unix sockets in the sandbox's `run/` directory, which the
 * jailed monitor can reach: QEMU 7.2 has no `file:` URI, and `exec:` would need the
 * process spawning its seccomp filter denies.
 *
 * A VM booted as a snapshot source keeps its RAM in a file (`ramSource`,
 * shared mapping): the saved state then holds only the device state (tens of
 * KiB, migration capability `x-ignore-shared`) and the RAM image is kept next
 * to it (`snapshotRamPath`). Restores map that image copy-on-write.
 */

/** The RAM image saved with a state file (`X.vmstate` → `X.ram`; a `.tmp-N` suffix is ignored). */
export function snapshotRamPath(vmstateFile: string): string {
  const m = /^(.*)\.vmstate(\.tmp-\d+)?$/.exec(vmstateFile);
  return m ? `${m[1]}.ram` : `${vmstateFile}.ram`;
}

const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

/**
 * Pause the VM and write its state to `file`; the VM stays paused. With
 * `ramSource` (the VM's file-backed RAM) the RAM goes to `snapshotRamPath(file)`
 * instead of into the stream, in place before `file` is complete.
 */
export async function saveQemuState(
  qmpPath: string,
  socketPath: string,
  file: string,
  owner?: number,
  ramSource?: string,
): Promise<void> {
  const q = await Qmp.open(qmpPath);
  const server = createServer();
  const ramFile = ramSource ? snapshotRamPath(file) : undefined;
  try {
    await q.execute('stop');
    if (ramSource) await q.execute('migrate-set-capabilities', IGNORE_SHARED);
    const received = new Promise<void>((resolve, reject) => {
      server.once('connection', (sock) => {
        pipeline(sock, createWriteStream(file, { mode: 0o600 })).then(resolve, reject);
      });
      server.once('error', reject);
    });
    rmSync(socketPath, { force: true });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    // The jailed monitor runs as its own uid: the socket must be its to connect to.
    if (owner !== undefined) chownSync(socketPath, owner, owner);
    await q.execute('migrate', { uri: `unix:${socketPath}` });
    const until = Date.now() + 120_000;
    for (;;) {
      const st = (await q.execute('query-migrate')) as { status?: string; 'error-desc'?: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled')
        throw new SandboxError('internal', `saving the VM state failed: ${st['error-desc'] ?? st.status}`);
      if (Date.now() > until) throw new SandboxError('internal', 'saving the VM state took over 120 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await received;
    if (ramSource && ramFile) {
      // The paused monitor still maps it, but writes nothing more; from now on only the
      // daemon may change it (the restored monitors get a sealed copy, see backend.ts).
      renameSync(ramSource, ramFile);
      chownSync(ramFile, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
      chmodSync(ramFile, 0o600);
    }
  } catch (e) {
    rmSync(file, { force: true });
    if (ramFile) rmSync(ramFile, { force: true });
    throw e;
  } finally {
    server.close();
    q.close();
    rmSync(socketPath, { force: true });
  }
}

/**
 * Stream a saved state into a QEMU started with `-incoming unix:SOCKET`
 * (retrying until it listens), wait for it to load, and resume the vCPUs: the
 * state was saved paused, and QEMU keeps the source's run state. With
 * `ramMapped` QEMU was started with `-incoming defer` and its RAM mapped from
 * the image: the stream is device state only (x-ignore-shared on both sides).
 */
export async function restoreQemuState(
  qmpPath: string,
  socketPath: string,
  file: string,
  exited: Promise<string>,
  ramMapped = false,
): Promise<void> {
  let q: Qmp | undefined;
  try {
    if (ramMapped) {
      q = await openQmpRetrying(qmpPath, exited);
      await q.execute('migrate-set-capabilities', IGNORE_SHARED);
      await q.execute('migrate-incoming', { uri: `unix:${socketPath}` });
    }
    await feedQemuState(socketPath, file, exited);
  } catch (e) {
    q?.close();
    throw e;
  }
  q ??= await Qmp.open(qmpPath);
  try {
    const until = Date.now() + 30_000;
    for (;;) {
      const st = (await q.execute('query-status')) as { status?: string };
      if (st.status === 'running') return;
      if (st.status !== 'inmigrate') {
        await q.execute('cont');
        return;
      }
      if (Date.now() > until) throw new SandboxError('boot_timeout', 'the saved VM state did not load within 30 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    q.close();
  }
}

/** QMP of a monitor that was just spawned: its socket appears a moment later. */
async function openQmpRetrying(qmpPath: string, exited: Promise<string>): Promise<Qmp> {
  let dead: string | undefined;
  void exited.then((why) => {
    dead = why;
  });
  const until = Date.now() + 10_000;
  for (;;) {
    if (dead) throw new SandboxError('boot_failed', `VM exited before its state was restored (${dead})`);
    try {
      return await Qmp.open(qmpPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED')
        throw new SandboxError('boot_failed', `restoring: ${(e as Error).message}`);
      if (Date.now() > until) throw new SandboxError('boot_timeout', 'the VM did not open its monitor within 10 s');
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

async function feedQemuState(socketPath: string, file: string, exited: Promise<string>): Promise<void> {
  let dead: string | undefined;
  void exited.then((why) => {
    dead = why;
  });
  const until = Date.now() + 10_000;
  for (;;) {
    if (dead) throw new SandboxError('boot_failed', `VM exited before its state was restored (${dead})`);
    try {
      const sock = await connectUnix(socketPath, 1000);
      // QEMU hangs up as soon as it has read the whole state, which can beat our end():
      // whether the load worked is read from its run state next, not from this stream.
      await pipeline(createReadStream(file), sock).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ERR_STREAM_PREMATURE_CLOSE' && e.code !== 'EPIPE' && e.code !== 'ECONNRESET') throw e;
      });
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED')
        throw new SandboxError('boot_failed', `restoring: ${(e as Error).message}`);
      if (Date.now() > until)
        throw new SandboxError('boot_timeout', 'the VM did not accept its saved state within 10 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
