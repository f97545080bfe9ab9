/**
 * A writer for the "newc" cpio format the Linux kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Written here so building an image needs no host `cpio`, and so the archive
 * is byte-for-byte reproducible (fixed mtimes, uid/gid 0, sorted order).
 */

/** One archive member. */
export type CpioEntry =
  | { readonly kind: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly kind: 'file'; readonly path: string; readonly data: Buffer; readonly mode?: number }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function header(ino: number, mode: number, size: number, name: string): Buffer {
  const nameBuf = Buffer.from(`${name}\0`, 'utf8');
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameBuf.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  const total = head.length + nameBuf.length;
  return Buffer.concat([head, nameBuf, Buffer.alloc(pad4(total))]);
}

/** Build a newc archive from entries (paths relative, without a leading slash). */
export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const path = e.path.replace(/^\/+/, '');
    let body: Buffer;
    let mode: number;
    if (e.kind === 'dir') {
      body = Buffer.alloc(0);
      mode = S_IFDIR | (e.mode ?? 0o755);
    } else if (e.kind === 'file') {
      body = e.data;
      mode = S_IFREG | (e.mode ?? 0o644);
    } else {
      body = Buffer.from(e.target, 'utf8');
      mode = S_IFLNK | 0o777;
    }
    parts.push(header(ino++, mode, body.length, path), body, Buffer.alloc(pad4(body.length)));
  }
  parts.push(header(0, 0, 0, 'TRAILER!!!'));
  return Buffer.concat(parts);
}
