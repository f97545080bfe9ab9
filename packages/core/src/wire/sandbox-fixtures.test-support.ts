// Valid sandbox messages, shared by the wire tests (not part of the package surface).
const H = `sha256:${'cd'.repeat(32)}`;

/** At least one valid example per sandbox message type. */
export const SANDBOX_VALID: Record<string, Record<string, unknown>[]> = {
  sandbox_host: [
    {
      type: 'sandbox_host',
      backend: 'qemu',
      isolation: 'microvm',
      kvm: false,
      images: [
        { pack: 'python', hash: H },
        { pack: 'shell', hash: H },
      ],
      capacity: { slots_total: 16, slots_free: 15, memory_free_mb: 20480 },
      sandboxes: ['sb_0123456789ab'],
    },
  ],
  sandbox_create: [
    {
      type: 'sandbox_create',
      request_id: 'sx-1',
      language_pack: 'python',
      image_hash: H,
      memory_mb: 192,
      vcpus: 1,
      lifetime_s: 900,
    },
    {
      type: 'sandbox_create',
      request_id: 'sx-2',
      language_pack: 'shell',
      image_hash: H,
      memory_mb: 256,
      vcpus: 2,
      lifetime_s: 60,
      env: { LANG: 'C.UTF-8' },
    },
  ],
  sandbox_exec: [
    {
      type: 'sandbox_exec',
      request_id: 'sx-3',
      sandbox: 'sb_0123456789ab',
      code: 'print(6*7)',
      timeout_ms: 30000,
      max_output_bytes: 65536,
    },
    {
      type: 'sandbox_exec',
      request_id: 'sx-4',
      sandbox: 'sb_0123456789ab',
      argv: ['/bin/ls', '-l', '/'],
      timeout_ms: 1000,
      stdin: 'x',
      env: { A: '1' },
      max_output_bytes: 1,
    },
  ],
  sandbox_write_file: [
    {
      type: 'sandbox_write_file',
      request_id: 'sx-5',
      sandbox: 'sb_0123456789ab',
      path: '/root/a.txt',
      content_b64: 'aGk=',
      mode: 0o644,
    },
  ],
  sandbox_read_file: [
    { type: 'sandbox_read_file', request_id: 'sx-6', sandbox: 'sb_0123456789ab', path: '/root/a.txt', max_bytes: 1024 },
  ],
  sandbox_destroy: [{ type: 'sandbox_destroy', request_id: 'sx-7', sandbox: 'sb_0123456789ab' }],
  sandbox_output: [{ type: 'sandbox_output', request_id: 'sx-3', seq: 0, stream: 'stdout', data: '42\n' }],
  sandbox_reply: [
    { type: 'sandbox_reply', request_id: 'sx-7' },
    {
      type: 'sandbox_reply',
      request_id: 'sx-1',
      sandbox: {
        id: 'sb_0123456789ab',
        language_pack: 'python',
        state: 'running',
        memory_mb: 192,
        vcpus: 1,
        lifetime_s: 900,
        boot_ms: 2100,
      },
    },
    {
      type: 'sandbox_reply',
      request_id: 'sx-3',
      exec: {
        stdout: '42\n',
        stderr: '',
        exit_code: 0,
        signal: null,
        duration_ms: 190,
        timed_out: false,
        truncated: false,
        redactions: [],
      },
    },
    { type: 'sandbox_reply', request_id: 'sx-6', file: { path: '/root/a.txt', size: 2, content_b64: 'aGk=' } },
    { type: 'sandbox_reply', request_id: 'sx-9', error: { code: 'not_found', message: 'no sandbox sb_x' } },
  ],
};
