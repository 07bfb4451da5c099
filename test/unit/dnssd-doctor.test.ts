// The doctor's DNS-SD checks, judged from status as a running Peernix reports it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsSdStatusView } from '../../src/base/api.ts';
import { dnsSdChecks } from '../../src/doctor/dnssd-checks.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';

const facts = (dnsSd: DnsSdStatusView | null) => ({ peernix: { snapshot: { status: { dnsSd } }, error: null } }) as unknown as DoctorFacts;
const base: DnsSdStatusView = { server: '10.0.0.53:53', domains: ['office.test'], lastError: null, found: 2, registration: null };
const reg = {
  domain: 'office.test',
  server: '10.0.0.53:53',
  instance: 'me-1234._peernix._tcp.office.test',
  addresses: ['10.1.0.5'],
  detail: null,
  leaseRequested: 7200,
  leaseGranted: null,
};

describe('doctor: DNS-SD', () => {
  it('says nothing when DNS-SD is off, and "not in use" when there is nothing to browse', () => {
    assert.deepEqual(dnsSdChecks(facts(null)), []);
    const [c] = dnsSdChecks(facts({ ...base, domains: [], found: 0 }));
    assert.equal(c.status, 'ok');
    assert.match(c.detail, /Not in use/);
  });

  it('fails configured domains with no server to ask, and warns when the server does not answer', () => {
    assert.equal(dnsSdChecks(facts({ ...base, server: null }))[0].status, 'fail');
    const [c] = dnsSdChecks(facts({ ...base, lastError: '_peernix._tcp.office.test: no answer from DNS server 10.0.0.53:53 over UDP' }));
    assert.equal(c.status, 'warn');
    assert.match(c.fix ?? '', /dig @10\.0\.0\.53 _peernix\._tcp\.office\.test PTR/);
  });

  it('shows a refused registration with the server’s reason and the fix for it', () => {
    const cases = [
      ['10.0.0.53:53 refused the update for office.test: NOTAUTH (BADSIG)', /key file’s name or secret/],
      ['10.0.0.53:53 refused the update for office.test: NOTAUTH (BADTIME)', /clock/],
      ['10.0.0.53:53 refused the update for office.test: REFUSED', /update-policy/],
    ] as const;
    for (const [detail, fix] of cases) {
      const [, c] = dnsSdChecks(facts({ ...base, registration: { ...reg, state: 'refused', detail } }));
      assert.equal(c.status, 'fail');
      assert.ok(c.detail.includes(detail));
      assert.match(c.fix ?? '', fix);
    }
    assert.equal(dnsSdChecks(facts({ ...base, registration: { ...reg, state: 'registered' } }))[1].status, 'ok');
  });

  it('says whether the server granted the update lease, and what follows from it', () => {
    const [, without] = dnsSdChecks(facts({ ...base, registration: { ...reg, state: 'registered' } }));
    assert.match(without.detail, /update lease not granted \(the server ignores the option\): the records stay until the next start replaces them/);
    const [, granted] = dnsSdChecks(facts({ ...base, registration: { ...reg, state: 'registered', leaseGranted: 3600 } }));
    assert.equal(granted.status, 'ok');
    assert.match(
      granted.detail,
      /update lease granted: 3600 s \(asked 7200 s\), refreshed before it runs out; the server removes the records if this machine vanishes/,
    );
  });
});
