import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDomainName, parseResolvConf } from '../../src/peers/resolv-conf.ts';

describe('resolv.conf', () => {
  it('reads nameservers and the last search line, as glibc does', () => {
    const conf = parseResolvConf(
      '# comment\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\ndomain old.test\nsearch Corp.Test. floor2.corp.test bad..name\noptions ndots:2\n',
    );
    assert.deepEqual(conf, { nameservers: ['10.0.0.53', 'fe80::1%eth0'], search: ['corp.test', 'floor2.corp.test'] });
  });

  it('bounds what it keeps and takes only domain names', () => {
    const many = Array.from({ length: 50 }, (_, i) => `nameserver 10.0.0.${i}`).join('\n');
    assert.equal(parseResolvConf(many).nameservers.length, 8);
    for (const ok of ['a.test', 'office.example.com.', '_dns-sd.test']) assert.equal(isDomainName(ok), true, ok);
    for (const bad of ['', '.', 'a..b', '-a.test', 'a b.test', 'x'.repeat(64), `${'a.'.repeat(130)}test`, 42])
      assert.equal(isDomainName(bad), false, String(bad));
  });
});
