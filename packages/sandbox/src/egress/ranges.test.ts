import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EgressPolicy, parseAllowEntry } from './policy.js';
import { blockedReason } from './ranges.js';

// [address, expected reason pattern or null when egress may reach it]
const TABLE: [string, RegExp | null][] = [
  ['127.0.0.1', /loopback/],
  ['127.255.255.254', /loopback/],
  ['0.0.0.0', /unspecified/],
  ['10.0.0.5', /private \(10\./],
  ['172.16.0.1', /private \(172\.16/],
  ['172.31.255.255', /private/],
  ['172.32.0.1', null],
  ['192.168.1.1', /private \(192\.168/],
  ['100.64.0.1', /carrier-grade NAT/],
  ['100.127.255.255', /carrier-grade NAT/],
  ['100.128.0.1', null],
  ['169.254.169.254', /cloud metadata/],
  ['169.254.1.1', /link-local/],
  ['100.100.100.200', /cloud metadata/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['255.255.255.255', /broadcast/],
  ['240.0.0.1', /reserved/],
  ['198.18.0.1', /benchmarking/],
  ['8.8.8.8', null],
  ['1.1.1.1', null],
  ['203.0.113.2', null], // documentation range: the tests' far end
  ['::', /unspecified/],
  ['::1', /loopback/],
  ['fe80::1', /link-local/],
  ['fe80::1%eth0', /link-local/],
  ['febf::1', /link-local/],
  ['fd00:ec2::254', /cloud metadata/],
  ['fc00::1', /unique local/],
  ['fdff:ffff::1', /unique local/],
  ['ff02::1', /multicast/],
  ['::ffff:127.0.0.1', /IPv4-mapped form of loopback/],
  ['::ffff:7f00:1', /IPv4-mapped form of loopback/],
  ['::ffff:169.254.169.254', /IPv4-mapped form of cloud metadata/],
  ['::ffff:10.1.2.3', /IPv4-mapped form of private/],
  ['::ffff:8.8.8.8', null],
  ['::127.0.0.1', /IPv4-compatible form of loopback/],
  ['::10.0.0.1', /IPv4-compatible form of private/],
  ['64:ff9b::a9fe:a9fe', /NAT64 form of cloud metadata/],
  ['2002:7f00:1::', /6to4 form of loopback/],
  ['2002:0808:0808::', null],
  ['2606:4700:4700::1111', null],
  ['2001:db8::1', null],
  ['not-an-ip', /not an IP address/],
];

describe('egress address ranges', () => {
  for (const [ip, want] of TABLE) {
    it(`${ip} → ${want ? want.source : 'allowed'}`, () => {
      const got = blockedReason(ip);
      if (want === null) assert.equal(got, undefined, `${ip} must be reachable`);
      else assert.match(got ?? '(allowed)', want);
    });
  }
});

describe('egress allowlist', () => {
  it('parses host:port, [v6]:port and *.suffix:port; the port is required', () => {
    assert.deepEqual(parseAllowEntry('API.Example.com.:443'), { host: 'api.example.com', port: 443 });
    assert.deepEqual(parseAllowEntry('[2001:db8::1]:8443'), { host: '2001:db8::1', port: 8443 });
    assert.deepEqual(parseAllowEntry('*.pypi.org:443'), { host: '*.pypi.org', port: 443 });
    for (const bad of [
      'example.com',
      'example.com:',
      'example.com:70000',
      '2001:db8::1:443',
      'a_b.com:80',
      '*.com:80',
      'x.*.com:80',
      ':80',
    ])
      assert.throws(() => parseAllowEntry(bad), Error, bad);
  });

  it('matches exact names, subdomains for wildcards (not the bare suffix), and the exact port', () => {
    const p = EgressPolicy.parse(['api.example.com:443', '*.pypi.org:443', '203.0.113.2:80']);
    assert.equal(p.allows('api.example.com', 443), true);
    assert.equal(p.allows('API.EXAMPLE.COM.', 443), true);
    assert.equal(p.allows('api.example.com', 80), false);
    assert.equal(p.allows('x.api.example.com', 443), false);
    assert.equal(p.allows('files.pypi.org', 443), true);
    assert.equal(p.allows('a.b.pypi.org', 443), true);
    assert.equal(p.allows('pypi.org', 443), false);
    assert.equal(p.allows('evilpypi.org', 443), false);
    assert.equal(p.allows('203.0.113.2', 80), true);
    assert.equal(p.allows('203.0.113.3', 80), false);
  });
});
