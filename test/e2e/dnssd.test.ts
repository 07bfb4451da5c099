// DNS-SD over unicast DNS across subnets, against a real BIND 9: three subnets (alice's, bob's and the
// DNS server's) joined by a router namespace that forwards unicast and no multicast, so mDNS cannot
// find anyone across it. BIND accepts TSIG-signed updates for office.test. Each Peernix registers
// itself there by DNS UPDATE and browses the zone; the other finds it within one TTL; bob's real Nix
// substitutes alice's path through bob's Peernix with signatures required; a clean stop removes the
// records; alice's link is cut and bob stops using her as it would an mDNS peer; a wrong key is refused
// by BIND and shown with its reason.
//
// Also: every subnet carries routable IPv6 (ULA, forwarded by the router; link-local stays on), and a
// fourth subnet is IPv6-only. carol lives there with no dnsSdDomains at all: her resolv.conf (the
// namespace's /etc/netns/<ns>/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf) has the
// search domain corp.test, where BIND advertises office.test as the browsing domain (RFC 6763 §11). She
// registers her AAAA over IPv6, bob finds her by it and his Nix substitutes her path over IPv6. Every
// registration carries an update lease (RFC 9664): BIND 9.18 accepts it, checks the TSIG over it, and
// grants none, which status, the doctor and the window say. The window (real Chromium in bob's
// namespace) shows the registration: registered, then refused with BIND's reason.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Snapshot } from '../../src/base/api.ts';
import { launchChromium } from '../support/chromium.ts';
import { createLan, type Lan, type LanHost, nodeBin, skippedWithoutNetns } from '../support/netns.ts';
import { addPath, cleanup, makeSigningKey, makeTempDir, type NixHost, nixEnv, run, startNixHost } from '../support/nix-host.ts';
import { MAIN, PROJECT_ROOT, type PeernixProcess, startPeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

const ZONE = 'office.test';
// The search domain carol's resolv.conf names; BIND points its browsing domains at ZONE.
const SEARCH = 'corp.test';
// ULA /64s: subnet a (alice, router), b (bob), c (BIND), d (carol, IPv6 only). The router is ::fe on each.
const V6 = (subnet: string, host: string) => `fd25:25:0:${subnet}::${host}`;
const PROBE = `${PROJECT_ROOT}test/support/dnssd-lease-probe.ts`;
const TTL = 10;
const SUBST = 'http://127.0.0.1:9998';

interface Host {
  name: string;
  lan: LanHost;
  nix: NixHost;
  key: { secretKeyFile: string; publicKey: string };
  stateDir: string;
  pn: PeernixProcess | null;
}

describe('DNS-SD across subnets with BIND', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let dir: string;
  const lans: Lan[] = [];
  let router: LanHost;
  let dns: LanHost;
  let alice: Host;
  let bob: Host;
  let carol: Host;
  let carolPath: string;
  const carolContent = `over IPv6 ${randomBytes(16).toString('hex')}\n`;
  let carolEtc = '';
  let browser: Browser | null = null;
  let page: Page | null = null;
  let alicePath: string;
  let aliceOther: string; // never asked for before her link is cut
  const aliceContent = `dns-sd ${randomBytes(16).toString('hex')}\n`;
  let trustedKeys = '';
  const secret = randomBytes(32).toString('base64');
  const extraVeths: string[] = [];
  let bind: ChildProcess;

  const ip = (args: string[]) => run('ip', args, { check: true });
  const dig = (args: string[]) => dns.run('dig', ['+short', '+time=1', '+tries=1', `@${dns.address}`, ...args]);

  // carol: no domains and no server of her own (resolv.conf gives both), registering over IPv6, and
  // trusting every network (an IPv6-only LAN has no IPv4 gateway to recognise it by).
  async function startPeernix(h: Host, keyFile: string): Promise<void> {
    const settings =
      h === carol
        ? { trustAllNetworks: true, dnsSdRegister: { domain: ZONE, server: `[${V6('c', '1')}]:53`, keyFile, ttl: TTL } }
        : { dnsSdDomains: [ZONE], dnsSdServer: dns.address, dnsSdRegister: { domain: ZONE, server: dns.address, keyFile, ttl: TTL } };
    writeFileSync(`${h.stateDir}/settings.json`, JSON.stringify(settings), { mode: 0o600 });
    h.pn = await startPeernixProcess(
      [
        '--store',
        h.nix.storeUri,
        '--share-listen',
        // alice's listener takes IPv4 only, so she registers no AAAA; bob's and carol's take both.
        h === alice ? '0.0.0.0:9999' : '[::]:9999',
        '--listen',
        '127.0.0.1:9998',
        '--secret-key-file',
        h.key.secretKeyFile,
        '--state-dir',
        h.stateDir,
        '--name',
        h.name,
        '--log-level',
        'debug',
      ],
      {
        env: nixEnv({ NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${trustedKeys}`, XDG_CACHE_HOME: `${h.stateDir}/xdg` }),
        wrap: (cmd, args) => ['ip', ['netns', 'exec', h.lan.ns, cmd, ...args]],
      },
    );
  }

  async function status(h: Host): Promise<Snapshot> {
    const r = await h.lan.run(nodeBin(), [MAIN, 'status', '--json', '--listen', '127.0.0.1:9998', '--state-dir', h.stateDir], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Snapshot;
  }

  function keyFile(h: Host, name: string, sec: string): string {
    const file = `${dir}/${h.name}/${name}.key`;
    writeFileSync(file, `key "peernix-office" {\n\talgorithm hmac-sha256;\n\tsecret "${sec}";\n};\n`, { mode: 0o600 });
    return file;
  }

  before(async () => {
    dir = await makeTempDir('pn-dnssd');
    // Subnet A: alice and the router; B: bob; C: the DNS server; D: carol. The router gets a leg in
    // B, C and D. Each subnet has a ULA /64 besides its IPv4 /24 (D has no IPv4 at all).
    lans.push(await createLan(2), await createLan(1), await createLan(1), await createLan(1));
    const [a, b, c, d] = lans;
    router = a.hosts[1];
    dns = c.hosts[0];
    const v6addr = (ns: string, dev: string, addr: string) => ip(['-n', ns, 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad']);
    await v6addr(router.ns, 'eth0', V6('a', 'fe'));
    for (const [i, [lan, sub]] of (
      [
        [b, 'b'],
        [c, 'c'],
        [d, 'd'],
      ] as const
    ).entries()) {
      const veth = `${lan.name.slice(0, -1)}v9`;
      const leg = `eth${i + 1}`;
      await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', leg, 'netns', router.ns]);
      extraVeths.push(veth);
      await ip(['link', 'set', veth, 'master', lan.name]);
      await ip(['link', 'set', veth, 'up']);
      await router.run('sysctl', ['-qw', `net.ipv6.conf.${leg}.disable_ipv6=0`]);
      const gw = `${lan.subnet.replace(/\.0\/24$/, '')}.254`;
      if (sub !== 'd') await ip(['-n', router.ns, 'addr', 'add', `${gw}/24`, 'dev', leg]);
      await v6addr(router.ns, leg, V6(sub, 'fe'));
      await ip(['-n', router.ns, 'link', 'set', leg, 'up']);
      if (sub !== 'd') await ip(['-n', lan.hosts[0].ns, 'route', 'add', 'default', 'via', gw]);
    }
    await ip(['-n', a.hosts[0].ns, 'route', 'add', 'default', 'via', router.address]);
    // carol's subnet is IPv6-only: her IPv4 address goes.
    await ip(['-4', '-n', d.hosts[0].ns, 'addr', 'flush', 'dev', 'eth0']);
    for (const [host, sub] of [
      [a.hosts[0], 'a'],
      [b.hosts[0], 'b'],
      [dns, 'c'],
      [d.hosts[0], 'd'],
    ] as const) {
      await v6addr(host.ns, 'eth0', V6(sub, '1'));
      await ip(['-n', host.ns, '-6', 'route', 'add', 'default', 'via', V6(sub, 'fe')]);
    }
    // Unicast forwarding only: no multicast routing runs, so mDNS stays on each subnet.
    const fwd = await router.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    assert.equal(fwd.code, 0, fwd.stderr);
    // carol's resolv.conf: the search domain that advertises the browsing domain, and BIND over IPv6.
    carolEtc = `/etc/netns/${d.hosts[0].ns}`;
    mkdirSync(carolEtc, { recursive: true });
    writeFileSync(`${carolEtc}/resolv.conf`, `search ${SEARCH}\nnameserver ${V6('c', '1')}\n`);

    // BIND, primary for office.test, updates allowed to the key only.
    const named = `${dir}/named`;
    await run('mkdir', ['-p', named], { check: true });
    writeFileSync(
      `${named}/named.conf`,
      `options { directory "${named}"; listen-on port 53 { ${dns.address}; }; listen-on-v6 port 53 { ${V6('c', '1')}; }; recursion no;
  pid-file "${named}/named.pid"; session-keyfile "${named}/session.key"; dnssec-validation no; };
key "peernix-office" { algorithm hmac-sha256; secret "${secret}"; };
zone "${ZONE}" { type primary; file "${named}/${ZONE}.db"; update-policy { grant peernix-office zonesub ANY; }; };
zone "${SEARCH}" { type primary; file "${named}/${SEARCH}.db"; };
`,
    );
    // The network's advertised browsing domains (RFC 6763 §11), under the search domain.
    writeFileSync(
      `${named}/${SEARCH}.db`,
      `$TTL ${TTL}\n@ IN SOA ns.${ZONE}. admin.${ZONE}. ( 1 60 30 600 5 )\n@ IN NS ns.${ZONE}.\nb._dns-sd._udp IN PTR ${ZONE}.\nlb._dns-sd._udp IN PTR ${ZONE}.\n`,
    );
    // SOA minimum 5: "no such records" is re-asked after 5 s, so a new peer is seen within the records' TTL.
    writeFileSync(`${named}/${ZONE}.db`, `$TTL ${TTL}\n@ IN SOA ns.${ZONE}. admin.${ZONE}. ( 1 60 30 600 5 )\n@ IN NS ns.${ZONE}.\nns IN A ${dns.address}\n`);
    bind = dns.exec('named', ['-g', '-c', `${named}/named.conf`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bindLog = '';
    bind.stderr?.setEncoding('utf8').on('data', (d: string) => (bindLog += d));
    await waitFor('BIND to answer', async () => ((await dig([ZONE, 'SOA'])).stdout.includes('admin') ? true : null), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${bindLog}`);
    });

    const make = async (name: string, lan: LanHost): Promise<Host> => {
      const nix = await startNixHost(`${dir}/${name}`);
      return { name, lan, nix, key: await makeSigningKey(nix, `${dir}/${name}`, `${name}-1`), stateDir: `${dir}/${name}/state`, pn: null };
    };
    alice = await make('alice', a.hosts[0]);
    bob = await make('bob', b.hosts[0]);
    carol = await make('carol', d.hosts[0]);
    await run('mkdir', ['-p', alice.stateDir, bob.stateDir, carol.stateDir], { check: true });
    trustedKeys = [alice.key.publicKey, bob.key.publicKey, carol.key.publicKey].join(' ');
    carolPath = await addPath(carol.nix, 'over-ipv6', { type: 'file', contents: carolContent });
    alicePath = await addPath(alice.nix, 'across-subnets', { type: 'file', contents: aliceContent });
    aliceOther = await addPath(alice.nix, 'asked-after-the-cut', { type: 'file', contents: `${randomBytes(16).toString('hex')}\n` });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const h of [alice, bob, carol]) await h?.pn?.stop().catch(() => {});
    for (const h of [alice, bob, carol]) await h?.nix.stop().catch(() => {});
    if (carolEtc) rmSync(carolEtc, { recursive: true, force: true });
    for (const lan of lans) await lan.teardown().catch(() => {});
    for (const veth of extraVeths) await run('ip', ['link', 'del', veth]).catch(() => {});
    if (dir) await cleanup(dir);
  });

  it('each registers by signed update; the other finds it within one TTL, across the router', async (t) => {
    await startPeernix(bob, keyFile(bob, 'good', secret));
    await waitFor('bob registered', async () => ((await status(bob)).status.dnsSd?.registration?.state === 'registered' ? true : null), 20_000);
    await startPeernix(alice, keyFile(alice, 'good', secret));
    await waitFor('alice registered', async () => ((await status(alice)).status.dnsSd?.registration?.state === 'registered' ? true : null), 20_000);
    const registeredAt = Date.now();
    const ptr = await dig([`_peernix._tcp.${ZONE}`, 'PTR']);
    assert.match(ptr.stdout, /^alice-[a-z0-9]+\._peernix\._tcp\.office\.test\.$/m);
    assert.match(ptr.stdout, /^bob-[a-z0-9]+\._peernix\._tcp\.office\.test\.$/m);

    const seen = await waitFor(
      'bob to find alice',
      async () => (await status(bob)).peers.find((p) => p.name === 'alice' && p.source === 'dnssd') ?? null,
      (TTL + 5) * 1000,
    );
    const foundMs = Date.now() - registeredAt;
    t.diagnostic(`bob found alice ${foundMs} ms after her registration was seen (TTL ${TTL} s)`);
    assert.ok(foundMs <= TTL * 1000, `found within one TTL (${foundMs} ms)`);
    assert.equal(seen.address, alice.lan.address, 'at her address on the other subnet');
    const up = await waitFor(
      'alice up and proven at bob',
      async () => (await status(bob)).peers.find((p) => p.name === 'alice' && p.state === 'up' && p.verified) ?? null,
      20_000,
    );
    assert.equal(up.trusted, true);
    const aliceView = await waitFor(
      'alice to find bob',
      async () => (await status(alice)).peers.find((p) => p.name === 'bob' && p.source === 'dnssd') ?? null,
      20_000,
    );
    assert.equal(aliceView.address, bob.lan.address);
    // mDNS found nobody across the router: every peer either side knows came from DNS.
    for (const h of [alice, bob])
      assert.deepEqual(
        (await status(h)).peers.map((p) => p.source),
        ['dnssd'],
      );
  });

  it('BIND accepts the update lease inside the signed UPDATE and checks the TSIG over it, but grants none: status, CLI and window say so', async (t) => {
    const reg = (await status(alice)).status.dnsSd?.registration;
    assert.equal(reg?.state, 'registered');
    assert.equal(reg?.leaseRequested, 7200, 'every registration asks for a lease');
    assert.equal(reg?.leaseGranted, null, 'BIND 9.18 echoes no UPDATE-LEASE option');
    const probe = async (tamper: string[]) => {
      const r = await bob.lan.run(nodeBin(), [PROBE, dns.address, ZONE, `${dir}/bob/good.key`, ...tamper], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { rcode: string; tsigError: string | null; answerVerifies: boolean; leaseEchoed: number | null };
    };
    const intact = await probe([]);
    t.diagnostic(`BIND's answer to a signed UPDATE with UPDATE-LEASE 3600: ${JSON.stringify(intact)}`);
    assert.deepEqual({ ...intact, sentBytes: undefined }, { rcode: 'NOERROR', tsigError: null, answerVerifies: true, leaseEchoed: null, sentBytes: undefined });
    const tampered = await probe(['tamper']);
    t.diagnostic(`the same with one bit of the lease flipped after signing: ${JSON.stringify(tampered)}`);
    assert.equal(tampered.rcode, 'NOTAUTH');
    assert.equal(tampered.tsigError, 'BADSIG', 'the MAC covers the OPT record');

    const cli = await alice.lan.run(nodeBin(), [MAIN, 'status', '--listen', '127.0.0.1:9998', '--state-dir', alice.stateDir], { timeoutMs: 30_000 });
    assert.match(cli.stdout, /lease: {8}update lease not granted \(the server ignores the option\): the records stay until the next start replaces them/);

    // The window: real Chromium in bob's namespace, on bob's own loopback listener.
    const wrapper = `${dir}/chromium-in-bob`;
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${bob.lan.ns} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
    browser = await launchChromium(wrapper);
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    await page.goto(`${SUBST}/peernix/`);
    const card = page.locator('[data-testid="dnssd-card"]');
    await card.waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="dnssd-registration"][data-state="registered"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('[data-testid="dnssd-registration-state"]').innerText(), 'registered');
    assert.match(
      await page.locator('[data-testid="dnssd-registration-text"]').innerText(),
      /^registered as bob-[a-z0-9]+\._peernix\._tcp\.office\.test with 10\.[0-9.]+:53 \(/,
    );
    assert.match(await page.locator('[data-testid="dnssd-lease"]').innerText(), /^update lease not granted/);
    assert.match(await page.locator('[data-testid="dnssd-browse"]').innerText(), /^Browsing office\.test via 10\.[0-9.]+:53: [1-9]\d* found\.$/);
  });

  it("bob's Nix substitutes alice's path across the router through Peernix, signatures required", async () => {
    const r = await bob.lan.run(
      'nix',
      [
        'copy',
        '--from',
        SUBST,
        '--to',
        `${dir}/client-bob`,
        alicePath,
        '--option',
        'trusted-public-keys',
        alice.key.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      { env: nixEnv({ XDG_CACHE_HOME: `${dir}/xdg-client` }), timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = await run('cat', [`${dir}/client-bob${alicePath}`], { check: true });
    assert.equal(got.stdout, aliceContent, 'byte-exact');
  });

  it('carol, IPv6-only with no dnsSdDomains, browses the domain her search domain advertises and registers her AAAA over IPv6', async (t) => {
    await startPeernix(carol, keyFile(carol, 'good', secret));
    const registered = await waitFor(
      'carol registered',
      async () => {
        const s = await status(carol);
        return s.status.dnsSd?.registration?.state === 'registered' ? s : null;
      },
      30_000,
    );
    const reg = registered.status.dnsSd?.registration;
    assert.deepEqual(reg?.addresses, [V6('d', '1')], 'her one routable address: the ULA (link-local is left out)');
    assert.equal(reg?.server, `[${V6('c', '1')}]:53`);
    const host = reg?.instance.split('.')[0];
    assert.equal((await dig([`${host}.${ZONE}`, 'AAAA'])).stdout.trim(), V6('d', '1'));
    assert.equal((await dig([`${host}.${ZONE}`, 'A'])).stdout.trim(), '', 'no A record');
    // bob registered his ULA beside his IPv4 address; alice, whose listener takes IPv4 only, did not.
    const bobReg = (await status(bob)).status.dnsSd?.registration;
    assert.deepEqual(bobReg?.addresses, [bob.lan.address, V6('b', '1')]);
    assert.equal((await dig([`${bobReg?.instance.split('.')[0]}.${ZONE}`, 'AAAA'])).stdout.trim(), V6('b', '1'));
    assert.deepEqual((await status(alice)).status.dnsSd?.registration?.addresses, [alice.lan.address]);

    let last = '';
    const s = await waitFor(
      'carol to find bob through the advertised domain',
      async () => {
        const st = await status(carol);
        last = `dnsSd ${JSON.stringify(st.status.dnsSd)}; peers ${st.peers.map((p) => `${p.name} ${p.address} ${p.state} verified=${p.verified}`).join(', ')}`;
        return st.peers.some((p) => p.name === 'bob' && p.source === 'dnssd' && p.state === 'up' && p.verified) ? st : null;
      },
      (TTL + 20) * 1000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; carol's last status: ${last}`);
    });
    assert.deepEqual(s.status.dnsSd?.domains, [ZONE], `browsed because ${SEARCH} advertises it`);
    assert.equal(s.status.dnsSd?.server, `[${V6('c', '1')}]:53`, "resolv.conf's nameserver, over IPv6");
    const bobAtCarol = s.peers.find((p) => p.name === 'bob');
    assert.equal(bobAtCarol?.address, V6('b', '1'), 'reached by his AAAA: carol has no IPv4');
    t.diagnostic(`carol sees: ${s.peers.map((p) => `${p.name} ${p.address} ${p.state}`).join(', ')}`);
  });

  it("bob finds carol by her AAAA, and bob's Nix substitutes her path over IPv6, signatures required", async (t) => {
    const seen = await waitFor(
      'carol up and proven at bob',
      async () => (await status(bob)).peers.find((p) => p.name === 'carol' && p.source === 'dnssd' && p.state === 'up' && p.verified) ?? null,
      (TTL + 20) * 1000,
    );
    assert.equal(seen.address, V6('d', '1'));
    assert.equal(seen.url, `http://[${V6('d', '1')}]:9999`);
    t.diagnostic(`bob reaches carol at ${seen.url}`);
    const r = await bob.lan.run(
      'nix',
      [
        'copy',
        '--from',
        SUBST,
        '--to',
        `${dir}/client-bob-v6`,
        carolPath,
        '--option',
        'trusted-public-keys',
        carol.key.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      { env: nixEnv({ XDG_CACHE_HOME: `${dir}/xdg-client-v6` }), timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = await run('cat', [`${dir}/client-bob-v6${carolPath}`], { check: true });
    assert.equal(got.stdout, carolContent, 'byte-exact, from a host with no IPv4 at all');
  });

  it("alice's link is cut: bob's next lookup of her path strikes her at once, as for an mDNS peer, and the miss is fast", async (t) => {
    const veth = alice.lan.ns.replace(/n(\d+)$/, 'v$1');
    await ip(['link', 'set', veth, 'down']);
    try {
      // Her summary admits the path, so bob asks her: the link check finds no one there.
      const started = performance.now();
      const miss = await bob.lan.run('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--max-time',
        '10',
        `${SUBST}/${aliceOther.slice(11, 43)}.narinfo`,
      ]);
      const ms = performance.now() - started;
      t.diagnostic(`bob's lookup of alice's path with her link cut: ${miss.stdout} in ${Math.round(ms)} ms`);
      assert.equal(miss.stdout, '404');
      assert.ok(ms < 1400, `the miss took ${Math.round(ms)} ms`);
      await waitFor(
        'bob to stop counting alice as up',
        async () => ((await status(bob)).peers.find((p) => p.name === 'alice')?.state !== 'up' ? true : null),
        5000,
      );
      assert.match(bob.pn?.logs() ?? '', /peer down: alice \((no answer for \d+ ms|its host did not answer a connect)/);
    } finally {
      await ip(['link', 'set', veth, 'up']);
    }
  });

  it("a clean stop removes bob's records; a wrong key is refused by BIND and shown with its reason", async () => {
    const before = (await dig([`_peernix._tcp.${ZONE}`, 'PTR'])).stdout;
    assert.match(before, /^bob-/m);
    assert.equal(await bob.pn?.stop(), 0);
    const afterStop = await dig([`_peernix._tcp.${ZONE}`, 'PTR']);
    assert.doesNotMatch(afterStop.stdout, /^bob-/m, 'its PTR is gone');
    assert.match(afterStop.stdout, /^alice-/m, "alice's stays");
    const bobHost = before.match(/^(bob-[a-z0-9]+)\./m)?.[1];
    assert.equal((await dig([`${bobHost}.${ZONE}`, 'A'])).stdout.trim(), '', 'and its address record');

    await startPeernix(bob, keyFile(bob, 'wrong', randomBytes(32).toString('base64')));
    const refused = await waitFor(
      'bob refused',
      async () => {
        const s = await status(bob);
        return s.status.dnsSd?.registration?.state === 'refused' ? s : null;
      },
      20_000,
    );
    const detail = refused.status.dnsSd?.registration?.detail ?? '';
    assert.match(detail, /NOTAUTH \(BADSIG\)/);
    assert.ok(
      refused.events.some((e) => e.type === 'error' && /DNS-SD registration in office\.test: .*NOTAUTH \(BADSIG\)/.test(e.message)),
      'an event says so',
    );
    const cli = await bob.lan.run(nodeBin(), [MAIN, 'status', '--listen', '127.0.0.1:9998', '--state-dir', bob.stateDir], { timeoutMs: 30_000 });
    assert.match(cli.stdout, /registered: {3}refused .*NOTAUTH \(BADSIG\)/);
    assert.doesNotMatch((await dig([`_peernix._tcp.${ZONE}`, 'PTR'])).stdout, /^bob-/m, 'nothing was written');
    // The doctor says DNS-SD browsing works from here and why the registration does not, with the fix.
    const doctor = await bob.lan.run(nodeBin(), [MAIN, 'doctor', '--listen', '127.0.0.1:9998', '--state-dir', bob.stateDir, '--store', bob.nix.storeUri], {
      env: nixEnv({ NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${trustedKeys}` }),
      timeoutMs: 60_000,
    });
    assert.match(doctor.stdout, /\[ok {2}\] DNS-SD \(peers across subnets\): Working: browsing office\.test via /);
    assert.match(doctor.stdout, /\[FAIL\] DNS-SD registration: Not registered in office\.test: .*NOTAUTH \(BADSIG\)/);
    assert.match(doctor.stdout, /fix: The key file’s name or secret is not the one the server has/);
    // The window says so too, with BIND's words (bob was restarted: a fresh load of the page).
    assert.ok(page, 'the window was opened');
    await page.reload();
    await page.locator('[data-testid="dnssd-registration"][data-state="refused"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('[data-testid="dnssd-registration-state"]').innerText(), 'refused');
    assert.match(await page.locator('[data-testid="dnssd-registration-text"]').innerText(), /^refused in office\.test: .*NOTAUTH \(BADSIG\)$/);
    mkdirSync(`${PROJECT_ROOT}test-artifacts/e2e-dnssd`, { recursive: true });
    await page.screenshot({ path: `${PROJECT_ROOT}test-artifacts/e2e-dnssd/window-refused.png`, fullPage: true });
  });

  it('with the DNS server dead, lookups stay fast and found peers stay (health judges them), the reason shown', async (t) => {
    await waitFor('bob to see alice again', async () => ((await status(bob)).peers.find((p) => p.name === 'alice' && p.state === 'up') ? true : null), 30_000);
    const exited = new Promise((r) => bind.once('exit', r));
    bind.kill('SIGKILL');
    await exited;
    const s = await waitFor(
      'a browse round to find the server silent',
      async () => {
        const st = await status(bob);
        return /no answer from DNS server/.test(st.status.dnsSd?.lastError ?? '') ? st : null;
      },
      (TTL + 10) * 1000,
    );
    assert.ok(
      s.peers.some((p) => p.name === 'alice' && p.state === 'up'),
      'alice is still used',
    );
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const miss = await bob.lan.run('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--max-time',
        '10',
        `${SUBST}/${randomBytes(16)
          .toString('hex')
          .slice(0, 32)
          .replace(/[eotu]/g, 'a')}.narinfo`,
      ]);
      times.push(performance.now() - started);
      assert.equal(miss.stdout, '404');
    }
    t.diagnostic(`misses with the DNS server dead: ${times.map((x) => Math.round(x)).join(' ')} ms`);
    assert.ok(Math.max(...times) < 1400, `slowest miss ${Math.max(...times)} ms`);
  });
});
