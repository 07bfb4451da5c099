import assert from 'node:assert/strict';
import { DEFAULT_EXCLUDE } from '../../src/store/path-scope.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { isLoopbackHost, parseHostPort } from '../../src/base/listen-address.ts';
import { DEFAULT_SETTINGS, SETTINGS_SCHEMA, SETTING_KEYS, openDaemonSettings, validatePatch, validateSettings } from '../../src/app/settings.ts';

const T = { timeout: 10_000 };
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-settings-'));
  dirs.push(d);
  return d;
}
/** Other state that lives beside settings.json and must never be touched. */
function plantNeighbours(dir: string): Record<string, string> {
  const files = { 'control-token': 'ab'.repeat(32) + '\n', 'secret-key': 'host-1:c2VjcmV0', 'instance-id': 'b6f1c2d9e0a34f58' };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
  return files;
}
function assertNeighboursIntact(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) assert.equal(fs.readFileSync(path.join(dir, name), 'utf8'), text, `${name} untouched`);
}
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('defaults and schema', () => {
  test('defaults are the documented ones', T, () => {
    assert.deepEqual(
      {
        ...DEFAULT_SETTINGS,
        peers: [...DEFAULT_SETTINGS.peers],
        team: [...DEFAULT_SETTINGS.team],
        dnsSdDomains: [...DEFAULT_SETTINGS.dnsSdDomains],
        publicKeys: [...DEFAULT_SETTINGS.publicKeys],
        exclude: [...DEFAULT_SETTINGS.exclude],
      },
      {
        sharing: true,
        shareListen: '0.0.0.0:9999',
        listen: '127.0.0.1:9998',
        peers: [],
        mdns: true,
        peerCompression: true,
        goPeers: true,
        goUdpPort: 9999,
        startAtLogin: false,
        metricsOnShare: false,
        shareThreads: 0,
        trustedNetworks: [],
        trustAllNetworks: false,
        team: [],
        dnsSdDomains: [],
        dnsSdServer: '',
        dnsSdRegister: null,
        scopesNotice: 'none',
        publicKeys: ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='],
        exclude: [...DEFAULT_EXCLUDE],
      },
    );
  });

  test('DNS-SD settings: domains, server and registration are checked field by field', T, () => {
    const { settings, problems } = validateSettings({
      dnsSdDomains: ['Office.Example.', 'bad domain', 'office.example'],
      dnsSdServer: '10.0.0.53:5353',
      dnsSdRegister: { domain: 'office.example', server: '10.0.0.53', keyFile: '/etc/peernix/office.key' },
    });
    assert.deepEqual(settings.dnsSdDomains, ['office.example']);
    assert.equal(settings.dnsSdServer, '10.0.0.53:5353');
    assert.deepEqual(settings.dnsSdRegister, { domain: 'office.example', server: '10.0.0.53', keyFile: '/etc/peernix/office.key', ttl: 30 });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /dnsSdDomains\[1\] "bad domain" is not a domain name/);
    for (const bad of [
      { domain: 'x', server: 'ns.example', keyFile: '/k' },
      { domain: 'x', server: '10.0.0.1', keyFile: 'relative.key' },
      { domain: 'x', server: '10.0.0.1', keyFile: '/k', ttl: 1 },
      'on',
    ]) {
      const r = validateSettings({ dnsSdRegister: bad });
      assert.equal(r.settings.dnsSdRegister, null);
      assert.match(r.problems[0], /"dnsSdRegister"/);
    }
    assert.throws(() => validatePatch({ dnsSdServer: 'dns.example' }), /dnsSdServer/);
  });

  test('publicKeys and exclude keep what parses, once each, and report the rest', T, () => {
    const k = 'org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';
    const { settings, problems } = validateSettings({ publicKeys: [k, k, 'nokey'], exclude: ['*.env', '*.env', '', 'a/b', 7] });
    assert.deepEqual(settings.publicKeys, [k]);
    assert.deepEqual(settings.exclude, ['*.env']);
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.deepEqual(validateSettings({ publicKeys: [], exclude: [] }).settings.publicKeys, []);
  });

  test('the JSON schema covers every setting with the same defaults', T, () => {
    assert.deepEqual(Object.keys(SETTINGS_SCHEMA).sort(), [...SETTING_KEYS].sort());
    for (const key of SETTING_KEYS) assert.deepEqual(SETTINGS_SCHEMA[key].default, DEFAULT_SETTINGS[key], key);
  });

  test('nothing configured means defaults and no problems', T, () => {
    assert.deepEqual(validateSettings(undefined), { settings: { ...DEFAULT_SETTINGS, peers: [] }, problems: [] });
    assert.deepEqual(validateSettings({}).problems, []);
  });
});

describe('validateSettings, field by field', () => {
  const one = (raw: Record<string, unknown>) => validateSettings(raw);

  for (const key of ['sharing', 'mdns', 'goPeers', 'startAtLogin', 'metricsOnShare'] as const) {
    test(`${key} must be a boolean`, T, () => {
      assert.equal(one({ [key]: !DEFAULT_SETTINGS[key] }).settings[key], !DEFAULT_SETTINGS[key]);
      for (const bad of ['true', 1, null, [], {}]) {
        const r = one({ [key]: bad });
        assert.equal(r.settings[key], DEFAULT_SETTINGS[key]);
        assert.equal(r.problems.length, 1);
        assert.match(r.problems[0], new RegExp(`"${key}" must be true or false`));
        assert.match(r.problems[0], /using the default/);
      }
    });
  }

  test('goUdpPort takes a port number 1–65535, and nothing else', T, () => {
    assert.equal(one({ goUdpPort: 10999 }).settings.goUdpPort, 10999);
    for (const bad of [0, 65536, 9999.5, '9999', null, -1]) {
      const r = one({ goUdpPort: bad });
      assert.equal(r.settings.goUdpPort, 9999);
      assert.equal(r.problems.length, 1, String(bad));
      assert.match(r.problems[0], /"goUdpPort" must be a port number/);
    }
  });

  test('shareThreads takes "auto" or a whole number 0–15, and nothing else', T, () => {
    assert.equal(one({ shareThreads: 3 }).settings.shareThreads, 3);
    assert.equal(one({ shareThreads: 0 }).settings.shareThreads, 0);
    assert.equal(one({ shareThreads: 'auto' }).settings.shareThreads, 'auto');
    for (const bad of [16, -1, 1.5, '2', 'all', null]) {
      const r = one({ shareThreads: bad });
      assert.equal(r.settings.shareThreads, 0);
      assert.equal(r.problems.length, 1, String(bad));
      assert.match(r.problems[0], /"shareThreads" must be "auto" or a whole number 0–15/);
    }
  });

  test('shareListen takes HOST:PORT, including bracketed IPv6', T, () => {
    for (const good of ['0.0.0.0:9999', '192.168.1.5:80', '[::]:9999', 'my-host.local:9999', '10.0.0.1:0']) {
      const r = one({ shareListen: good });
      assert.deepEqual(r.problems, [], good);
      assert.equal(r.settings.shareListen, good);
    }
    for (const bad of ['9999', '0.0.0.0', '0.0.0.0:99999', ':9999', '::1:9999', 'http://0.0.0.0:9999', 'a b:1', 42]) {
      const r = one({ shareListen: bad });
      assert.equal(r.settings.shareListen, '0.0.0.0:9999', String(bad));
      assert.match(r.problems[0], /"shareListen" must/);
    }
  });

  test('listen must be a loopback HOST:PORT', T, () => {
    for (const good of ['127.0.0.1:9998', '127.0.0.2:1', 'localhost:9998', '[::1]:9998']) {
      assert.deepEqual(one({ listen: good }).problems, [], good);
    }
    for (const bad of ['0.0.0.0:9998', '192.168.1.2:9998', '[::]:9998', 'example.com:9998']) {
      const r = one({ listen: bad });
      assert.equal(r.settings.listen, '127.0.0.1:9998');
      assert.match(r.problems[0], /"listen" must be a loopback address/, bad);
    }
    assert.match(one({ listen: 'nonsense' }).problems[0], /"listen" must look like HOST:PORT/);
  });

  test('peers keeps good http(s) URLs and reports each bad one', T, () => {
    const r = one({ peers: ['http://10.0.0.2:9999', 'ftp://x', 'https://cache.lan', 42, 'http://u:p@h:1', 'not a url', 'http://10.0.0.2:9999'] });
    assert.deepEqual(r.settings.peers, ['http://10.0.0.2:9999', 'https://cache.lan']);
    assert.equal(r.problems.length, 4);
    assert.match(r.problems.join('\n'), /peers\[1\] "ftp:\/\/x" must start with http:\/\/ or https:\/\//);
    assert.match(r.problems.join('\n'), /peers\[3\] 42 must be a string/);
    assert.match(r.problems.join('\n'), /user name or password/);
    const notList = one({ peers: 'http://x:1' });
    assert.deepEqual(notList.settings.peers, []);
    assert.match(notList.problems[0], /"peers" must be a list of URLs/);
  });

  test('a bad field does not disturb the good ones', T, () => {
    const r = one({ sharing: false, listen: '0.0.0.0:1', mdns: false });
    assert.equal(r.settings.sharing, false);
    assert.equal(r.settings.mdns, false);
    assert.equal(r.settings.listen, '127.0.0.1:9998');
    assert.equal(r.problems.length, 1);
  });

  test('unknown keys and non-objects are reported', T, () => {
    assert.match(one({ sharng: true }).problems[0], /unknown setting "sharng"/);
    assert.deepEqual(one({ __internal__: { migrations: {} } }).problems, []);
    for (const raw of [[], 'x', 3, null]) {
      const r = validateSettings(raw);
      assert.deepEqual(r.settings, { ...DEFAULT_SETTINGS, peers: [] });
      assert.match(r.problems[0], /expected a JSON object/);
    }
  });

  test('patches are strict', T, () => {
    assert.deepEqual(validatePatch({ sharing: false, peers: ['http://a:1'] }), { sharing: false, peers: ['http://a:1'] });
    assert.throws(() => validatePatch({ listen: '0.0.0.0:1' }), /invalid settings: "listen" must be a loopback/);
    assert.throws(() => validatePatch({ peers: ['ftp://x'] }), /invalid settings/);
    assert.throws(() => validatePatch({ nope: 1 }), /unknown setting "nope"/);
  });

  test('host helpers', T, () => {
    assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
    assert.equal(parseHostPort('[nope]:80'), null);
    assert.ok(isLoopbackHost('127.9.9.9') && isLoopbackHost('::1') && isLoopbackHost('LOCALHOST'));
    assert.ok(!isLoopbackHost('128.0.0.1') && !isLoopbackHost('::') && !isLoopbackHost('localhost.evil.com'));
  });
});

describe('openDaemonSettings (conf)', () => {
  test('trustedNetworks keeps plausible ids and reports the rest', T, () => {
    const r = validateSettings({ trustedNetworks: ['gateway 02:00:00:00:00:0a 10.77.0.0/24', 7, 'x\ny', 'gateway 02:00:00:00:00:0a 10.77.0.0/24'] });
    assert.deepEqual(r.settings.trustedNetworks, ['gateway 02:00:00:00:00:0a 10.77.0.0/24']);
    assert.equal(r.problems.length, 2);
    assert.throws(() => validatePatch({ trustedNetworks: ['ok', ''] }), /not a network id/);
    assert.throws(() => validatePatch({ trustAllNetworks: 'yes' }), /true or false/);
  });

  test('only a file from before trusted networks is an upgrade (trusts its first network once)', T, () => {
    const fresh = tmpDir();
    assert.equal(openDaemonSettings(fresh).predatesNetworkTrust, false, 'a first run is not an upgrade');
    assert.equal(openDaemonSettings(fresh).predatesNetworkTrust, false, 'nor is the file it wrote');
    const old = tmpDir();
    fs.writeFileSync(path.join(old, 'settings.json'), JSON.stringify({ sharing: true, mdns: true }));
    const store = openDaemonSettings(old);
    assert.equal(store.predatesNetworkTrust, true);
    store.set({ trustedNetworks: ['subnet 10.77.0.0/24'] });
    assert.equal(openDaemonSettings(old).predatesNetworkTrust, false, 'once written, never again');
  });

  test('only a file from before scopes is an upgrade to be told about, and only until scopesNotice is written', T, () => {
    assert.equal(openDaemonSettings(tmpDir()).predatesScopes, false, 'a first run is not an upgrade');
    const old = tmpDir();
    fs.writeFileSync(path.join(old, 'settings.json'), JSON.stringify({ sharing: true, team: [] }));
    const store = openDaemonSettings(old);
    assert.equal(store.predatesScopes, true);
    store.set({ scopesNotice: 'pending' });
    assert.equal(openDaemonSettings(old).predatesScopes, false, 'once told, never again');
    assert.equal(openDaemonSettings(old).get().scopesNotice, 'pending');
    const scoped = tmpDir();
    fs.writeFileSync(path.join(scoped, 'settings.json'), JSON.stringify({ publicKeys: [] }));
    assert.equal(openDaemonSettings(scoped).predatesScopes, false, 'a file that names publicKeys knows scopes');
    assert.throws(() => validatePatch({ scopesNotice: 'maybe' }), /"none", "pending" or "seen"/);
  });

  test('a first run writes the defaults, private to the user', T, () => {
    const dir = tmpDir();
    const store = openDaemonSettings(dir);
    assert.equal(store.path, path.join(dir, 'settings.json'));
    assert.deepEqual(store.get(), { ...DEFAULT_SETTINGS, peers: [] });
    assert.deepEqual(store.problems, []);
    assert.deepEqual(readJson(store.path), { ...DEFAULT_SETTINGS, peers: [] });
    if (process.platform !== 'win32') assert.equal(fs.statSync(store.path).mode & 0o777, 0o600);
  });

  test('set then get round-trips, across a reopen', T, () => {
    const dir = tmpDir();
    const store = openDaemonSettings(dir);
    store.set({ sharing: false, peers: ['http://10.0.0.9:9999'] });
    assert.equal(store.get().sharing, false);
    store.set({ mdns: false });
    const again = openDaemonSettings(dir);
    assert.deepEqual(again.get(), { ...DEFAULT_SETTINGS, sharing: false, peers: ['http://10.0.0.9:9999'], mdns: false });
    assert.deepEqual(again.problems, []);
  });

  test('get returns a copy', T, () => {
    const store = openDaemonSettings(tmpDir());
    store.get().peers.push('http://mutated:1');
    assert.deepEqual(store.get().peers, []);
  });

  test('an invalid patch throws and writes nothing', T, () => {
    const store = openDaemonSettings(tmpDir());
    const before = fs.readFileSync(store.path, 'utf8');
    assert.throws(() => store.set({ listen: '0.0.0.0:9998' }), /loopback/);
    assert.throws(() => store.set({ sharing: 'yes' as unknown as boolean }), /"sharing" must be true or false/);
    assert.equal(fs.readFileSync(store.path, 'utf8'), before);
  });

  test('corrupt JSON: a clear problem, a backup, safe defaults, neighbours untouched', T, () => {
    const dir = tmpDir();
    const neighbours = plantNeighbours(dir);
    const broken = '{\n  "sharing": false,\n  "peers": ["http://10.0.0.3:9999"\n';
    fs.writeFileSync(path.join(dir, 'settings.json'), broken);

    const store = openDaemonSettings(dir);
    assert.deepEqual(store.get(), { ...DEFAULT_SETTINGS, peers: [] });
    assert.equal(store.problems.length, 1);
    assert.match(store.problems[0], /settings\.json is not valid JSON/);
    const backups = fs.readdirSync(dir).filter((f) => f.startsWith('settings.json.corrupt-'));
    assert.equal(backups.length, 1);
    assert.ok(store.problems[0].includes(path.join(dir, backups[0])), 'the message names the backup');
    assert.equal(fs.readFileSync(path.join(dir, backups[0]), 'utf8'), broken, 'backup is the original bytes');
    assert.deepEqual(readJson(store.path), { ...DEFAULT_SETTINGS, peers: [] }, 'a valid file again');
    assertNeighboursIntact(dir, neighbours);
    assert.deepEqual(fs.readdirSync(dir).sort(), [...Object.keys(neighbours), 'settings.json', backups[0]].sort());

    // And the next start is clean.
    assert.deepEqual(openDaemonSettings(dir).problems, []);
  });

  test('JSON that is not an object is treated as corrupt too', T, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'settings.json'), '[true]');
    const store = openDaemonSettings(dir);
    assert.match(store.problems[0], /not an object.*kept a copy/);
    assert.equal(fs.readdirSync(dir).filter((f) => f.includes('.corrupt-')).length, 1);
  });

  test('a hand-edited bad value: problem + default for that field only; the file is kept as written', T, () => {
    const dir = tmpDir();
    const neighbours = plantNeighbours(dir);
    const text = JSON.stringify({ sharing: 'nope', listen: '0.0.0.0:9998', peers: ['http://10.0.0.3:9999'], mdns: false, note: 'mine' }, null, 2);
    fs.writeFileSync(path.join(dir, 'settings.json'), text);

    const store = openDaemonSettings(dir);
    const s = store.get();
    assert.equal(s.sharing, true);
    assert.equal(s.listen, '127.0.0.1:9998');
    assert.deepEqual(s.peers, ['http://10.0.0.3:9999']);
    assert.equal(s.mdns, false);
    assert.equal(store.problems.length, 3);
    assert.match(store.problems.join('\n'), /"sharing" must be true or false \(got "nope"\)/);
    assert.match(store.problems.join('\n'), /"listen" must be a loopback address/);
    assert.match(store.problems.join('\n'), /unknown setting "note"/);
    assert.equal(fs.readFileSync(store.path, 'utf8'), text, 'not rewritten: the user can still see and fix it');
    assertNeighboursIntact(dir, neighbours);

    // Setting one thing changes only that key; the rest of the hand edit survives.
    store.set({ sharing: false });
    const onDisk = readJson(store.path);
    assert.equal(onDisk.sharing, false);
    assert.equal(onDisk.listen, '0.0.0.0:9998');
    assert.equal(onDisk.note, 'mine');
    assert.equal(store.problems.length, 2, 'the fixed field no longer reports a problem');
    assertNeighboursIntact(dir, neighbours);
  });

  test('a file corrupted while running is backed up before the next write', T, () => {
    const dir = tmpDir();
    const neighbours = plantNeighbours(dir);
    const store = openDaemonSettings(dir);
    store.set({ peers: ['http://10.0.0.4:9999'] });
    fs.writeFileSync(store.path, '{oops');
    store.set({ sharing: false });
    assert.deepEqual(readJson(store.path), { ...DEFAULT_SETTINGS, peers: ['http://10.0.0.4:9999'], sharing: false });
    const backups = fs.readdirSync(dir).filter((f) => f.startsWith('settings.json.corrupt-'));
    assert.equal(backups.length, 1);
    assert.equal(fs.readFileSync(path.join(dir, backups[0]), 'utf8'), '{oops');
    assert.match(store.problems.join('\n'), /became unreadable/);
    assertNeighboursIntact(dir, neighbours);
  });

  test('an empty file (a crash mid-write) starts from defaults', T, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'settings.json'), '');
    const store = openDaemonSettings(dir);
    assert.match(store.problems[0], /was empty/);
    assert.deepEqual(store.get(), { ...DEFAULT_SETTINGS, peers: [] });
  });

  test('the state directory is created if missing', T, () => {
    const dir = path.join(tmpDir(), 'nested', 'state');
    const store = openDaemonSettings(dir);
    assert.ok(fs.existsSync(store.path));
  });
});
