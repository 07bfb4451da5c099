import { parseArgs } from 'node:util';
import type { NetworkStatusView, NoticeView, Snapshot, StatusView, TeamView } from '../base/api.ts';
import { baseUrlFromListen, clearPeerBad, fetchSnapshot, networkAction, noticeSeen, setSharing, shareWhy, teamAction } from '../control/client.ts';
import { readToken } from '../control/token.ts';
import { openDaemonSettings } from '../app/settings.ts';
import { defaultStateDir } from '../base/state-dir.ts';
import { describeSummary } from '../base/summary-text.ts';
import { describeLease } from '../base/dnssd-text.ts';

// `peernix status`, `peernix sharing on|off`, `peernix peer clear ID|NAME`, `peernix network
// trust|forget|list` and `peernix team add|remove|list`: talk to the running Peernix on its loopback
// listener.

function target(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { listen: { type: 'string' }, 'state-dir': { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  const stateDir = values['state-dir'] ?? defaultStateDir();
  const listen = values.listen ?? openDaemonSettings(stateDir).get().listen;
  return { baseUrl: baseUrlFromListen(listen), stateDir, json: values.json, positionals };
}

export async function status(argv: string[]): Promise<number> {
  const t = target(argv);
  const snap = await fetchSnapshot(t.baseUrl);
  process.stdout.write(t.json ? JSON.stringify(snap, null, 2) + '\n' : describe(snap));
  return 0;
}

export async function sharing(argv: string[]): Promise<number> {
  const t = target(argv);
  const want = t.positionals[0];
  if (want !== 'on' && want !== 'off') {
    process.stderr.write('usage: peernix sharing on|off [--listen HOST:PORT] [--state-dir DIR]\n');
    return 2;
  }
  const token = await readToken(t.stateDir);
  if (!token) throw new Error(`no control token in ${t.stateDir}; is this the state directory of the running Peernix?`);
  const now = await setSharing(t.baseUrl, token, want === 'on');
  // Wanted but held off by the network: say why and how, rather than a bare "off".
  const paused = !now && want === 'on' ? (await fetchSnapshot(t.baseUrl)).status.sharePaused : null;
  process.stdout.write(
    paused ? `sharing is on, but paused here: ${paused} (\`peernix network trust\` to share on it)\n` : `sharing is ${now ? 'on' : 'off'}\n`,
  );
  return 0;
}

export async function peer(argv: string[]): Promise<number> {
  const t = target(argv);
  const [verb, who] = t.positionals;
  if (verb !== 'clear' || !who || t.positionals.length !== 2) {
    process.stderr.write('usage: peernix peer clear ID|NAME [--listen HOST:PORT] [--state-dir DIR]\n');
    return 2;
  }
  const snap = await fetchSnapshot(t.baseUrl);
  const byId = snap.peers.find((p) => p.id === who);
  const byName = snap.peers.filter((p) => p.name === who);
  if (!byId && byName.length > 1) {
    process.stderr.write(`peernix: ${byName.length} peers are named "${who}"; give an id: ${byName.map((p) => p.id).join(', ')}\n`);
    return 1;
  }
  const target_ = byId ?? byName[0];
  if (!target_) {
    process.stderr.write(`peernix: no peer "${who}"; see \`peernix status\`\n`);
    return 1;
  }
  const token = await readToken(t.stateDir);
  if (!token) throw new Error(`no control token in ${t.stateDir}; is this the state directory of the running Peernix?`);
  const cleared = await clearPeerBad(t.baseUrl, token, target_.id);
  process.stdout.write(cleared ? `${target_.name}: no longer marked bad; it is used again once it answers\n` : `${target_.name} was not marked bad\n`);
  return 0;
}

const NETWORK_USAGE = 'usage: peernix network trust [current|ID] | forget [current|ID] | list [--json] [--listen HOST:PORT] [--state-dir DIR]\n';

export async function network(argv: string[]): Promise<number> {
  const t = target(argv);
  const [verb, which = 'current', ...more] = t.positionals;
  if (more.length || (verb !== 'trust' && verb !== 'forget' && verb !== 'list') || (verb === 'list' && t.positionals.length > 1)) {
    process.stderr.write(NETWORK_USAGE);
    return 2;
  }
  let view: NetworkStatusView | undefined;
  if (verb === 'list') {
    view = (await fetchSnapshot(t.baseUrl)).status.network;
    if (!view) throw new Error('this Peernix is too old to know about trusted networks');
  } else {
    const token = await readToken(t.stateDir);
    if (!token) throw new Error(`no control token in ${t.stateDir}; is this the state directory of the running Peernix?`);
    view = await networkAction(t.baseUrl, token, verb === 'trust' ? { trust: which } : { forget: which });
  }
  process.stdout.write(t.json ? JSON.stringify(view, null, 2) + '\n' : networkLines(view).join('\n') + '\n');
  return 0;
}

const TEAM_USAGE = 'usage: peernix team add <public key> | remove <key|name|fingerprint> | list [--json] [--listen HOST:PORT] [--state-dir DIR]\n';

export async function team(argv: string[]): Promise<number> {
  const t = target(argv);
  const [verb, who, ...more] = t.positionals;
  const ok = more.length === 0 && ((verb === 'list' && who === undefined) || ((verb === 'add' || verb === 'remove') && who !== undefined));
  if (!ok) {
    process.stderr.write(TEAM_USAGE);
    return 2;
  }
  let view: TeamView | undefined;
  let notices: NoticeView[] = [];
  if (verb === 'list') {
    const st = (await fetchSnapshot(t.baseUrl)).status;
    view = st.team;
    if (!view) throw new Error('this Peernix is too old to have a team');
    notices = st.notices ?? [];
  } else {
    const token = await readToken(t.stateDir);
    if (!token) throw new Error(`no control token in ${t.stateDir}; is this the state directory of the running Peernix?`);
    view = await teamAction(t.baseUrl, token, verb === 'add' ? { add: who! } : { remove: who! });
  }
  process.stdout.write(t.json ? JSON.stringify(view, null, 2) + '\n' : [...notices.map((n) => `NOTICE: ${n.text}\n`), ...teamLines(view)].join('\n') + '\n');
  // The list printed the notice in full, with whom to add: it has been read.
  const token = notices.length ? await readToken(t.stateDir) : null;
  if (token) for (const n of notices) await noticeSeen(t.baseUrl, token, n.id);
  return 0;
}

const SHARE_USAGE = 'usage: peernix share why <store path or hash part> [--json] [--listen HOST:PORT] [--state-dir DIR]\n';

export async function share(argv: string[]): Promise<number> {
  const t = target(argv);
  const [verb, what, ...more] = t.positionals;
  if (verb !== 'why' || !what || more.length) {
    process.stderr.write(SHARE_USAGE);
    return 2;
  }
  const why = await shareWhy(t.baseUrl, what);
  if (!why) {
    process.stderr.write(`peernix: this store does not hold ${what}; nobody gets it from here\n`);
    return 1;
  }
  process.stdout.write(t.json ? JSON.stringify(why, null, 2) + '\n' : `${why.storePath}\n  scope: ${why.scope} (${why.why})\n  served to: ${why.servedTo}\n`);
  return 0;
}

function teamLines(v: TeamView): string[] {
  return [
    `team: ${v.members.length ? `${v.members.length} member(s)` : 'nobody yet: team paths go to no one (`peernix team add <public key>`)'}${v.saved ? '' : ' (for this run only: --team was given)'}`,
    ...v.members.map((m) => `  ${m.name}  ${m.fingerprint}${m.peerName ? `  seen now as ${m.peerName}` : ''}\n    ${m.publicKey}`),
    ...(v.candidates.length
      ? [
          `peers your Nix already trusts, not in the team (compare the fingerprint with its owner before adding):`,
          ...v.candidates.map((c) => `  ${c.name}  ${c.fingerprint}\n    peernix team add ${c.publicKey}`),
        ]
      : []),
  ];
}

function networkLines(n: NetworkStatusView): string[] {
  const here = n.current ? `${n.current.name}  [${n.current.id}]` : 'no recognised network';
  return [
    `this network: ${here}`,
    `  sharing here: ${n.trustAll ? 'allowed (every network is trusted: trustAllNetworks)' : n.trusted ? 'allowed (trusted)' : 'not allowed: `peernix network trust` to share here'}`,
    `trusted networks: ${n.trustedNetworks.length ? '' : 'none'}`,
    ...n.trustedNetworks.map((t) => `  ${t.name}  [${t.id}]`),
  ];
}

function describe(s: Snapshot): string {
  const st = s.status;
  const lines = [
    `Peernix ${st.version} on ${st.hostName} (${st.instanceId})`,
    `  sharing:      ${st.sharing ? `on, ${st.shareUrl}` : st.sharePaused ? `paused: ${st.sharePaused}` : 'off'}`,
    ...(st.network
      ? [
          `  network:      ${st.network.current?.name ?? 'none recognised'}${st.network.trustAll ? ' (every network trusted)' : st.network.trusted ? ' (trusted)' : ' (not trusted: `peernix network trust`)'}`,
        ]
      : []),
    ...(st.shareError ? [`  !             ${st.shareError}`] : []),
    ...(st.notices ?? []).map((n) => `  NOTICE:       ${n.text} (\`peernix team list\` shows whom to add, and stops this notice)`),
    ...(st.scopes
      ? [
          `  scopes:       ${scopeLine(st.scopes.judged)} judged; refused by scope: ${scopeLine(st.scopes.refused)} (public keys: ${st.scopes.publicKeys.map((k) => k.slice(0, k.indexOf(':'))).join(', ') || 'none'}; ${st.scopes.exclude.length} exclude patterns)`,
        ]
      : []),
    ...(st.team
      ? [
          `  team:         ${st.team.members.length ? st.team.members.map((m) => `${m.name} (${m.fingerprint})`).join(', ') : 'nobody (`peernix team add <public key>`)'}`,
        ]
      : []),
    `  substituter:  ${st.substituterUrl}`,
    `  nix-daemon:   ${st.daemon.ok ? `ok (Nix ${st.daemon.version ?? '?'})` : st.daemon.stalled ? `stalled, NARs wait for it (lookups go on from the store database where it can be read): ${st.daemon.error}` : `unreachable: ${st.daemon.error}`}`,
    ...(st.trust
      ? [
          `  nix trust:    ${st.trust.error ? `UNREADABLE: ${st.trust.error}; ` : ''}${st.trust.keys} trusted key(s), require-sigs ${st.trust.requireSigs}${st.trust.source ? `, from ${st.trust.source}` : ''}`,
        ]
      : []),
    ...(st.trust?.clashes ?? []).map(
      (c) =>
        `  KEY CLASH:    ${c.ignored.length + 1} trusted keys named ${c.name}: Nix honours only the first and refuses paths signed by the others; give each Go peernix host its own key-name (peernix doctor)`,
    ),
    `  public key:   ${st.publicKey}`,
    ...(st.shareAddresses?.length ? [`  colleagues:   ${st.shareAddresses.join('  ')}`] : []),
    `  mDNS:         ${st.mdns ? 'on' : 'off'}`,
    ...dnsSdLines(st),
    ...lanLines(s),
    `  peers:        ${s.peers.length === 0 ? 'none yet' : ''}`,
    ...s.peers.map(
      (p) =>
        `    ${(p.bad ? 'bad' : p.state).padEnd(7)} ${p.name} ${p.url}${p.source === 'dnssd' ? ' [DNS-SD]' : ''}${p.rttMs !== null ? ` ${p.rttMs} ms` : ''}${p.trusted ? ' (trusted key)' : ''}${p.teamMember ? ' (team)' : ''}${badLine(p)}\n            ${describeSummary(p.summary)}`,
    ),
    `  cache entries: ${s.entries.length}`,
    ...s.entries.slice(0, 10).map((e) => `    ${e.name} ← ${e.sourceName} (${e.hits} hits)`),
    `  recent events:`,
    ...s.events.slice(0, 10).map((e) => `    ${new Date(e.time).toISOString()} ${eventLine(e)}`),
  ];
  return lines.join('\n') + '\n';
}

function scopeLine(n: Record<'public' | 'team' | 'never', number>): string {
  return `public ${n.public}, team ${n.team}, never ${n.never}`;
}

function lanLines(s: Snapshot): string[] {
  const lines: string[] = [];
  const tally = (t: NonNullable<Snapshot['lan']>['today']) =>
    `fetched ${formatBytes(t.fetchedBytes)} (${paths(t.fetchedPaths)}) from peers, served ${formatBytes(t.servedBytes)} (${paths(t.servedPaths)}), ${t.misses} ${t.misses === 1 ? 'miss' : 'misses'} answered`;
  const paths = (n: number) => `${n} ${n === 1 ? 'path' : 'paths'}`;
  if (s.lan) lines.push(`  LAN today:    ${tally(s.lan.today)}`, `  this week:    ${tally(s.lan.week)}`);
  const moving = (s.transfers ?? []).filter((t) => t.outcome === null);
  if (moving.length) {
    lines.push(`  transfers:`);
    for (const t of moving) {
      lines.push(
        `    ${t.direction === 'in' ? '← from' : '→ to'} ${t.peerName} ${t.storePath} ${formatBytes(t.bytes)} of ${formatBytes(t.total)} at ${formatBytes(t.bytesPerSec)}/s`,
      );
    }
  }
  return lines;
}

function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Math.max(0, n);
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function badLine(p: Snapshot['peers'][number]): string {
  if (!p.bad) return '';
  return `\n            not used: ${p.bad.reason} (since ${new Date(p.bad.since).toISOString()}, until ${new Date(p.bad.until).toISOString()}; \`peernix peer clear ${p.name}\` to use it again)`;
}

function eventLine(e: Snapshot['events'][number]): string {
  switch (e.type) {
    case 'fallback':
      return `fallback ${e.storePath}: ${e.from} → ${e.to ?? 'nobody'} (${e.reason}, ${e.outcome})`;
    case 'peer-up':
    case 'peer-down':
      return `${e.type} ${e.peerName}${e.type === 'peer-down' && e.reason ? ` (${e.reason})` : ''}`;
    case 'transfer':
      return `transfer ${e.direction} ${e.storePath} ${e.peerName} ${e.bytes} bytes ${e.outcome}`;
    case 'sharing':
      return `sharing ${e.enabled ? 'on' : 'off'}${e.reason ? ` (${e.reason})` : ''}`;
    case 'network':
      return `network ${e.networkName ?? 'none'}: ${e.trusted ? 'sharing allowed' : 'not sharing'}${e.note ? ` (${e.note})` : ''}`;
    case 'daemon':
      return `nix-daemon ${e.state}${e.detail ? ` (${e.detail})` : ''}`;
    case 'team':
      return `team ${e.change} ${e.name} (${e.fingerprint})`;
    case 'notice':
      return `notice ${e.text}`;
    case 'error':
      return `error ${e.message}`;
  }
}

function dnsSdLines(st: StatusView): string[] {
  const d = st.dnsSd;
  if (!d) return [];
  const out = [
    `  DNS-SD:       ${d.domains.length ? `browsing ${d.domains.join(', ')}` : 'no domains to browse'}${d.server ? ` via ${d.server}` : ''}, ${d.found} found${d.lastError ? `; ${d.lastError}` : ''}`,
  ];
  const r = d.registration;
  if (r)
    out.push(
      `  registered:   ${r.state} ${r.instance || r.domain}${r.addresses.length ? ` (${r.addresses.join(' ')})` : ''}${r.detail ? `: ${r.detail}` : ''}`,
      `  lease:        ${describeLease(r)}`,
    );
  return out;
}
