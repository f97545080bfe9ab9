import { SandboxError } from '../errors.js';

/**
 * Where the compressed kernel sits inside a bzImage (Documentation/arch/x86/boot.rst):
 * `setup_sects` at 0x1f1, `payload_offset`/`payload_length` at 0x248/0x24c of
 * the setup header; the protected-mode code starts at (setup_sects + 1) * 512.
 */
export function bzImagePayload(bz: Buffer): {
  readonly offset: number;
  readonly length: number;
  readonly format: 'lz4' | 'gzip' | 'xz' | 'zstd' | 'unknown';
} {
  if (bz.length < 0x250 || bz.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new SandboxError('image_build_failed', 'kernel image is not a bzImage (no "HdrS" setup header)');
  }
  const setupSects = bz.readUInt8(0x1f1) || 4; // 0 means 4, per the boot protocol
  const offset = (setupSects + 1) * 512 + bz.readUInt32LE(0x248);
  const length = bz.readUInt32LE(0x24c);
  if (offset + length > bz.length)
    throw new SandboxError('image_build_failed', 'bzImage payload runs past the end of the file');
  const magic = bz.subarray(offset, offset + 4);
  const format =
    magic.readUInt32LE(0) === 0x184c2102 // legacy LZ4 frame, as the kernel's build writes it
      ? 'lz4'
      : magic[0] === 0x1f && magic[1] === 0x8b
        ? 'gzip'
        : magic.toString('latin1', 1, 4) === '7zX'
          ? 'xz'
          : magic.readUInt32LE(0) === 0xfd2fb528
            ? 'zstd'
            : 'unknown';
  return { offset, length, format };
}
