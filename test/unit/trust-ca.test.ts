import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AffinityCache } from '../../src/domain/affinity.ts';
import { cacheListenerHandler } from '../support/share-route.ts';
import { listen } from '../../src/cache/http-listener.ts';
import { EventLog } from '../../src/base/events.ts';
import { silentLogger } from '../../src/base/log.ts';
import { contentAddressedPath, isContentAddressedPath, narHashFitsContentAddress, parseContentAddress } from '../../src/nix/content-address.ts';
import { formatSha256Nix32, parseSha256 } from '../../src/nix/hash.ts';
import { parseNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry } from '../../src/peers/registry.ts';
import { Resolver } from '../../src/domain/resolver.ts';
import { judgeNarInfo, policyFromKeys } from '../../src/domain/trust.ts';
import { FakeLocalStore, FakePeer, makePath, narInfoFor, type TestPath } from '../support/fake-peer.ts';
import { get } from '../support/http.ts';
import { addTestClosure, cleanup, makeTempDir, startNixHost, type NixHost, type PathInfoJson } from '../support/nix-host.ts';
import { LocalBackend } from '../../src/cache/local-backend.ts';

// A CA line counts only when it determines the very store path it is attached to. Checked against
// every kind of content-addressed path Nix 2.8 makes, and through the resolver against a peer that
// forges CA lines to win the race.

const upstream = parseSecretKey(generateKeyPair('cache.example.org-1').secretKeyText);
const policy = policyFromKeys([upstream.publicKey.text], true);

function narInfoOf(p: PathInfoJson): NarInfo {
  const narHash = formatSha256Nix32(parseSha256(p.narHash));
  return {
    storePath: p.path,
    url: `nar/x.nar`,
    compression: 'none',
    narHash,
    narSize: p.narSize,
    references: p.references.map((r) => path.basename(r)),
    sigs: [],
    ...(p.ca ? { ca: p.ca } : {}),
  };
}

const base = (p: string) => path.basename(p);

describe('content addresses of paths real Nix 2.8 made', () => {
  let dir: string;
  let host: NixHost;
  const made: { how: string; info: PathInfoJson }[] = [];

  before(async () => {
    dir = await makeTempDir('pn-ca');
    host = await startNixHost(dir, { start: false });
    const work = path.join(dir, 'in');
    await fsp.mkdir(path.join(work, 'd'), { recursive: true });
    await fsp.writeFile(path.join(work, 'hello.txt'), 'hello\n');
    await fsp.writeFile(path.join(work, 'd', 'a'), 'a\n');
    await fsp.writeFile(path.join(work, 'd', 'x'), '#!/bin/sh\n', { mode: 0o755 });
    const add = async (how: string, args: string[]) => {
      const out = (await host.nixStore(args, { check: true })).stdout.trim().split('\n').pop()!;
      made.push({ how, info: (await host.pathInfoJson([out]))[0] });
    };
    await add('nix-store --add FILE', ['--add', path.join(work, 'hello.txt')]);
    await add('nix-store --add DIR', ['--add', path.join(work, 'd')]);
    await add('--add-fixed sha256 FILE', ['--add-fixed', 'sha256', path.join(work, 'hello.txt')]);
    await add('--add-fixed sha1 FILE', ['--add-fixed', 'sha1', path.join(work, 'hello.txt')]);
    await add('--add-fixed md5 --recursive DIR', ['--add-fixed', 'md5', '--recursive', path.join(work, 'd')]);
    await add('--add-fixed sha512 --recursive FILE', ['--add-fixed', 'sha512', '--recursive', path.join(work, 'hello.txt')]);
    // builtins.toFile: text paths, with references to other text paths.
    const expr = 'let a = builtins.toFile "t" "hi\\n"; in builtins.toFile "t2" "ref ${a} ${builtins.toFile "t3" "x"}"';
    const t2 = (await host.nix(['eval', '--raw', '--expr', expr], { check: true })).stdout.trim();
    for (const p of await host.pathInfoJson([t2, ...(await host.pathInfoJson([t2]))[0].references])) made.push({ how: 'builtins.toFile', info: p });
    // A .drv is a text path referring to its inputs.
    const nixFile = path.join(work, 'drv.nix');
    await fsp.writeFile(
      nixFile,
      'derivation { name = "fo"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${builtins.toFile "t" "hi\\n"}" ]; }\n',
    );
    const drv = (await host.run('nix-instantiate', ['--store', host.root, nixFile], { check: true })).stdout.trim();
    // --derivation: a .drv given to path-info otherwise stands for its output.
    const drvInfo = JSON.parse((await host.nix(['path-info', '--json', '--derivation', drv], { check: true })).stdout) as PathInfoJson[];
    made.push({ how: 'nix-instantiate (.drv)', info: drvInfo[0] });
    // make-content-addressed: fixed:r:sha256 paths with references and a self-reference.
    const closure = await addTestClosure(host, { largeSize: 1000, smallFiles: 3 });
    const rewrites = JSON.parse((await host.nix(['store', 'make-content-addressed', '--json', closure.top], { check: true })).stdout).rewrites as Record<
      string,
      string
    >;
    const top = rewrites[closure.top];
    const infos = await host.pathInfoJson([top, ...(await host.pathInfoJson([top]))[0].references.filter((r) => r !== top)]);
    for (const p of infos) made.push({ how: 'nix store make-content-addressed', info: p });
  });

  after(async () => {
    if (dir) await cleanup(dir);
  });

  it('computes the store path Nix gave every one of them', (t) => {
    const kinds = new Set<string>();
    let selfRefs = 0;
    let withRefs = 0;
    for (const { how, info } of made) {
      assert.ok(info.ca, `${how}: ${info.path} has a CA`);
      const refs = info.references.map(base);
      if (refs.includes(base(info.path))) selfRefs++;
      if (refs.some((r) => r !== base(info.path))) withRefs++;
      kinds.add(info.ca!.replace(/:[^:]+$/, ''));
      assert.ok(isContentAddressedPath(info.path, info.ca!, refs), `${how}: ${info.path} from ${info.ca} and [${refs.join(' ')}]`);
      assert.equal(judgeNarInfo(narInfoOf(info), policy), 'trusted', `${how}: unsigned but content-addressed`);
    }
    t.diagnostic(
      `${made.length} paths made by Nix 2.8, CA kinds: ${[...kinds].sort().join(', ')}; ${withRefs} with references, ${selfRefs} with a self-reference`,
    );
    for (const k of ['text:sha256', 'fixed:sha256', 'fixed:r:sha256', 'fixed:sha1', 'fixed:r:md5', 'fixed:r:sha512']) assert.ok(kinds.has(k), `covers ${k}`);
    assert.ok(selfRefs >= 1 && withRefs >= 3);
  });

  it('NarHash equals the CA hash exactly for fixed:r:sha256 paths without a self-reference', (t) => {
    let checked = 0;
    for (const { info } of made) {
      const ca = parseContentAddress(info.ca!)!;
      const self = info.references.includes(info.path);
      const narHash = parseSha256(info.narHash);
      const equal = ca.hash.equals(narHash);
      if (ca.kind === 'fixed' && ca.recursive && ca.algo === 'sha256') assert.equal(equal, !self, info.path);
      assert.ok(narHashFitsContentAddress(info.ca!, narHash, self));
      checked++;
    }
    t.diagnostic(`NarHash/CA agreement checked on ${checked} paths`);
  });

  it('refuses any change of name, references, method or hash', (t) => {
    let refused = 0;
    for (const { how, info } of made) {
      const refs = info.references.map(base);
      const [hashPart, ...rest] = base(info.path).split('-');
      const name = rest.join('-');
      const variants: [string, string, string[]][] = [
        ['other name', `/nix/store/${hashPart}-${name}x`, refs],
        ['extra reference', info.path, [...refs, base(made[0].info.path) === base(info.path) ? base(made[1].info.path) : base(made[0].info.path)]],
        ['other hash', info.path.replace(/^(\/nix\/store\/)(.)/, (_, a: string, c: string) => a + (c === '0' ? '1' : '0')), refs],
      ];
      if (refs.length > 0) variants.push(['dropped reference', info.path, refs.slice(1)]);
      const ca = info.ca!;
      const flipped = ca.startsWith('fixed:r:')
        ? ca.replace('fixed:r:', 'fixed:')
        : ca.startsWith('fixed:')
          ? ca.replace('fixed:', 'fixed:r:')
          : ca.replace('text:', 'fixed:r:');
      for (const [what, p, r] of variants) {
        assert.equal(isContentAddressedPath(p, ca, r), false, `${how} ${info.path}: ${what}`);
        refused++;
      }
      assert.equal(isContentAddressedPath(info.path, flipped, refs), false, `${how}: other method ${flipped}`);
      const otherHash = `${ca.replace(/:[^:]+$/, '')}:${encodeNix32(randomBytes(parseContentAddress(ca)!.hash.length))}`;
      assert.equal(isContentAddressedPath(info.path, otherHash, refs), false, `${how}: other CA hash`);
      const forged = narInfoOf({ ...info, ca: otherHash });
      assert.equal(judgeNarInfo(forged, policy), 'rejected', `${how}: forged CA, unsigned, require-sigs`);
      assert.equal(judgeNarInfo(forged, policyFromKeys([], false)), 'acceptable', `${how}: forged CA, require-sigs off`);
      refused += 3;
    }
    t.diagnostic(`${refused} altered path/CA/reference combinations refused`);
  });
});

describe('content-address module', () => {
  it('rejects what Nix 2.8 cannot parse and fixed-output paths it has no rule for', () => {
    for (const bad of [
      '',
      'text:sha1:iwjz551fyw0cxcjgf4l6c879zabd6wpm',
      'fixed:git:sha1:iwjz551fyw0cxcjgf4l6c879zabd6wpm',
      'fixed:sha256:xyz',
      'source:sha256:' + '0'.repeat(52),
      'fixed:r:sha256:' + '0'.repeat(52) + ':x',
    ]) {
      assert.equal(parseContentAddress(bad), null, bad);
    }
    const flat = parseContentAddress('fixed:sha256:' + '1'.repeat(52))!;
    assert.equal(contentAddressedPath(flat, 'x', ['aalzvdsbflxkj5v8vckpw1z51ss34if5-t']), null);
    const hex = parseContentAddress('fixed:r:sha256:' + 'ab'.repeat(32))!;
    const b64 = parseContentAddress('fixed:r:sha256:' + Buffer.from('ab'.repeat(32), 'hex').toString('base64'))!;
    assert.equal(contentAddressedPath(hex, 'x', []), contentAddressedPath(b64, 'x', []));
    assert.equal(isContentAddressedPath('/nix/store/../x', 'fixed:r:sha256:' + 'ab'.repeat(32), []), false);
  });
});

describe('resolver: a peer forging CA lines', () => {
  it('loses to a genuine signed peer in 20 of 20 lookups, and a genuine unsigned CA path still wins', async (t) => {
    const store = new FakeLocalStore();
    const client = new PeerClient({ connectMs: 300, narInfoMs: 1500, narHeadersMs: 2000, narIdleMs: 3000 }, 'peernix-test');
    const registry = new PeerRegistry({ client, healthTimeoutMs: 10_000, isTrusted: () => false });
    const resolver = new Resolver({
      local: new LocalBackend(store, parseSecretKey(generateKeyPair('this-machine-1').secretKeyText)),
      registry,
      client,
      affinity: new AffinityCache(),
      events: new EventLog(),
      log: silentLogger,
      trust: () => policy,
      hedgeMs: 150,
    });
    const listener = await listen({
      host: '127.0.0.1',
      port: 0,
      handler: cacheListenerHandler({ backend: resolver, log: silentLogger, priority: 30 }),
      log: silentLogger,
      loopbackOnly: true,
    });
    const forger = await FakePeer.start();
    const genuine = await FakePeer.start();
    t.after(async () => {
      registry.stop();
      await listener.close(0);
      client.close();
      await Promise.all([forger.close(), genuine.close()]);
    });
    for (const [i, p] of [forger, genuine].entries()) {
      registry.upsert({
        id: `peer-${i}`,
        name: ['forger', 'genuine'][i],
        url: p.url,
        address: '127.0.0.1',
        port: p.port,
        platform: null,
        publicKey: null,
        source: 'static',
      });
    }
    await registry.checkAll();
    assert.equal(registry.live().length, 2);
    // The forger always answers first; the genuine peer takes a while.
    genuine.knobs.narInfoDelayMs = 60;

    const N = 20;
    let genuineWins = 0;
    let forgedWins = 0;
    let narsIdentical = 0;
    for (let i = 0; i < N; i++) {
      const real = makePath(`pkg-${i}`, 4096);
      genuine.add(real, narInfoFor(real, { signers: [upstream] }));
      // Same store path, other bytes, an unsigned CA line of random garbage.
      const fake = makePath(`pkg-${i}`, 4096, real.hashPart);
      forger.add(fake, narInfoFor(fake, { ca: `fixed:r:sha256:${fake.narHash32}` }));
      const r = await get(`${listener.url}/${real.hashPart}.narinfo`);
      assert.equal(r.status, 200, `lookup ${i}`);
      const info = parseNarInfo(r.body.toString('utf8'));
      if (info.narHash === `sha256:${real.narHash32}` && info.sigs.length === 1) genuineWins++;
      if (info.narHash === `sha256:${fake.narHash32}`) forgedWins++;
      const nar = await get(`${listener.url}/${info.url}`);
      if (nar.status === 200 && nar.body.equals(real.nar)) narsIdentical++;
    }
    t.diagnostic(
      `forged CA vs signed: genuine won ${genuineWins}/${N}, forger won ${forgedWins}/${N}; NARs identical to the genuine ones: ${narsIdentical}/${N}`,
    );
    assert.equal(genuineWins, N);
    assert.equal(forgedWins, 0);
    assert.equal(narsIdentical, N);

    // A real CA path (fixed:r:sha256 of its own NAR, path computed from it) needs no signature.
    const nar = randomBytes(4096);
    const ca = `fixed:r:sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`;
    const caPath = contentAddressedPath(parseContentAddress(ca)!, 'ca-thing', [])!;
    const hashPart = caPath.slice(11, 43);
    const p: TestPath = { ...makePath('ca-thing', 4096, hashPart), nar, narHash: createHash('sha256').update(nar).digest() };
    p.narHash32 = encodeNix32(p.narHash);
    genuine.add(p, narInfoFor(p, { ca }));
    const r = await get(`${listener.url}/${hashPart}.narinfo`);
    assert.equal(r.status, 200);
    const info = parseNarInfo(r.body.toString('utf8'));
    assert.equal(info.ca, ca);
    assert.equal(info.sigs.length, 0);
    const got = await get(`${listener.url}/${info.url}`);
    assert.ok(got.body.equals(nar));
    t.diagnostic(`genuine unsigned CA path ${caPath}: served (${got.body.length} bytes)`);
  });
});
