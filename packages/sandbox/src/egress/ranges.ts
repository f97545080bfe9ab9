import { isIP } from 'node:net';

/**
 * Which addresses an egress connection may never reach, whatever name led to
 * them: the host itself, private and shared networks, link-local (where cloud
 * metadata lives), multicast and broadcast. Checked on every address a name
 * resolves to (one bad address refuses the name: DNS rebinding), and on the
 * embedded IPv4 address of IPv4-mapped, -compatible, NAT64 and 6to4 forms.
 *
 * Documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32)
 * are NOT refused: nothing routes them on the internet, and the tests use
 * 203.0.113/24 as their "public" far end.
 */

interface Range {
  readonly net: Uint8Array;
  readonly bits: number;
  readonly reason: string;
}

function v4Bytes(ip: string): Uint8Array | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** 16 bytes of an IPv6 literal (zone id dropped, embedded dotted quad allowed), or undefined. */
export function v6Bytes(ip: string): Uint8Array | undefined {
  const text = ip.replace(/%.*$/, '');
  if (isIP(text) !== 6) return undefined;
  let head = text;
  let tail4: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail4 = v4Bytes(text.slice(lastColon + 1));
    if (!tail4) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [l = '', r] = head.split('::');
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  const fill = r === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

function range(cidr: string, reason: string): Range {
  const [addr = '', bits = ''] = cidr.split('/');
  const net = addr.includes(':') ? v6Bytes(addr) : v4Bytes(addr);
  if (!net) throw new Error(`bad range ${cidr}`);
  return { net, bits: Number(bits), reason: `${reason} (${cidr})` };
}

function inRange(a: Uint8Array, r: Range): boolean {
  if (a.length !== r.net.length) return false;
  for (let bit = 0; bit < r.bits; bit += 8) {
    const i = bit / 8;
    const take = Math.min(8, r.bits - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((a[i] ?? 0) & mask) !== ((r.net[i] ?? 0) & mask)) return false;
  }
  return true;
}

// Most specific first, so the reason names the narrowest match (metadata before link-local).
const V4: readonly Range[] = [
  range('169.254.169.254/32', 'cloud metadata'),
  range('100.100.100.200/32', 'cloud metadata'),
  range('255.255.255.255/32', 'broadcast'),
  range('0.0.0.0/8', 'unspecified / this network'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'carrier-grade NAT'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'IETF protocol assignments'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('224.0.0.0/4', 'multicast'),
  range('240.0.0.0/4', 'reserved'),
];

const V6: readonly Range[] = [
  range('fd00:ec2::254/128', 'cloud metadata'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'site-local'),
  range('fc00::/7', 'unique local'),
  range('ff00::/8', 'multicast'),
  range('100::/64', 'discard'),
];

/** IPv6 forms that carry an IPv4 address: the embedded address is what a packet may reach. */
const EMBEDS: readonly { range: Range; at: number }[] = [
  { range: range('::ffff:0:0/96', 'IPv4-mapped'), at: 12 },
  { range: range('64:ff9b::/96', 'NAT64'), at: 12 },
  { range: range('64:ff9b:1::/48', 'NAT64 local'), at: 12 },
  { range: range('2002::/16', '6to4'), at: 2 },
  { range: range('::/96', 'IPv4-compatible'), at: 12 },
];

/** Why an address is refused, or undefined when egress may reach it. Not an IP literal: refused. */
export function blockedReason(ip: string): string | undefined {
  const family = isIP(ip.replace(/%.*$/, ''));
  if (family === 4) {
    const a = v4Bytes(ip);
    if (!a) return 'not an IP address';
    return V4.find((r) => inRange(a, r))?.reason;
  }
  if (family !== 6) return 'not an IP address';
  const a = v6Bytes(ip);
  if (!a) return 'not an IP address';
  const direct = V6.find((r) => inRange(a, r));
  if (direct) return direct.reason;
  for (const e of EMBEDS) {
    if (!inRange(a, e.range)) continue;
    const v4 = a.subarray(e.at, e.at + 4);
    const why = V4.find((r) => inRange(v4, r));
    if (why) return `${e.range.reason.replace(/ \(.*/, '')} form of ${why.reason}`;
  }
  return undefined;
}
