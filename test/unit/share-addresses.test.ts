import { format } from 'node:util';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { shareAddresses, type Interfaces } from '../../src/domain/share-addresses.ts';

// What the window tells a colleague to use, from made-up interface tables (os.networkInterfaces()
// shape).

const iface = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
  ({
    address,
    family,
    internal,
    netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::',
    mac: '00:00:00:00:00:00',
    cidr: null,
    scopeid: family === 'IPv6' ? 0 : undefined,
  }) as never;

const ifaces: Interfaces = {
  lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
  eth0: [iface('192.168.1.20', 'IPv4'), iface('fe80::1', 'IPv6'), iface('fd00::20', 'IPv6')],
  wlan0: [iface('10.0.0.7', 'IPv4')],
};

describe('shareAddresses', () => {
  test('0.0.0.0: every non-internal IPv4 address, never 0.0.0.0 or loopback', (t) => {
    const got = shareAddresses('0.0.0.0', 9999, ifaces);
    t.diagnostic(format(got.join(' ')));
    assert.deepEqual(got, ['http://192.168.1.20:9999', 'http://10.0.0.7:9999']);
  });
  test(':: takes IPv6 too, without link-local when there is anything else', () => {
    assert.deepEqual(shareAddresses('::', 9999, ifaces), ['http://192.168.1.20:9999', 'http://10.0.0.7:9999', 'http://[fd00::20]:9999']);
    assert.deepEqual(shareAddresses('::', 9999, { eth0: [iface('fe80::1', 'IPv6')] }), ['http://[fe80::1]:9999'], 'link-local when it is all there is');
  });
  test('a specific bound address is the only one shown', () => {
    assert.deepEqual(shareAddresses('192.168.1.20', 9000, ifaces), ['http://192.168.1.20:9000']);
    assert.deepEqual(shareAddresses('fd00::20', 9000, ifaces), ['http://[fd00::20]:9000']);
  });
  test('no LAN interface: nothing to offer', () => {
    assert.deepEqual(shareAddresses('0.0.0.0', 9999, { lo: [iface('127.0.0.1', 'IPv4', true)] }), []);
  });
});
