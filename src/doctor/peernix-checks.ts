import type { DoctorCheck } from '../base/api.ts';
import type { DoctorFacts } from './facts.ts';

// Is Peernix itself up and reachable: running, its share listener accepting, seen from the LAN,
// mDNS working, peers found and their keys trusted or not.

export function peernixChecks(f: DoctorFacts): DoctorCheck[] {
  const snap = f.peernix.snapshot;
  const checks: DoctorCheck[] = [];
  if (!snap) {
    checks.push({
      id: 'peernix.running',
      group: 'peernix',
      title: 'Peernix running',
      status: 'fail',
      detail: `Nothing answers at ${f.substituterUrl}: ${(f.peernix.error ?? 'no answer').replace(/\.+$/, '')}. Nix skips a substituter it cannot reach.`,
      fix: 'Start it: `peernix serve` (or the Peernix app).',
    });
  } else {
    checks.push({
      id: 'peernix.running',
      group: 'peernix',
      title: 'Peernix running',
      status: 'ok',
      detail: `Peernix ${snap.status.version} on ${snap.status.hostName}, substituter ${snap.status.substituterUrl}.`,
      fix: null,
    });
  }
  checks.push(shareCheck(f));
  checks.push(lanCheck(f));
  if (snap) checks.push(...mdnsAndPeers(f));
  const scopes = scopeCheck(f);
  if (scopes) checks.push(scopes);
  return checks;
}

// What scoped sharing kept back (README, "What is shared with whom"): refusals are expected — a
// stranger asking for a team path — but team paths refused while sharing is why a colleague's Nix
// would not get what this machine built.
function scopeCheck(f: DoctorFacts): DoctorCheck | null {
  const s = f.peernix.snapshot?.status.scopes;
  if (!s) return null;
  const base = { id: 'share.scopes', group: 'peernix', title: 'What is shared with whom' } as const;
  const judged = `paths judged: ${s.judged.public} public, ${s.judged.team} team, ${s.judged.never} never (exclude patterns: ${s.exclude.length}; public keys: ${s.publicKeys.map((k) => k.slice(0, k.indexOf(':'))).join(', ') || 'none'})`;
  const refused = s.refused.team + s.refused.never;
  if (s.refused.team === 0) return { ...base, status: 'ok', detail: `${judged}; ${refused} requests refused by scope.`, fix: null };
  return {
    ...base,
    status: 'warn',
    detail: `${judged}; ${s.refused.team} requests for team paths (built or added here, not signed by a public key) were answered as absent to askers outside the team${s.refused.never ? `, and ${s.refused.never} for excluded paths` : ''}.`,
    fix: "If those askers are your colleagues' Peernix machines, add each other to the team: `peernix team list` shows the peers your Nix already trusts with their key fingerprints (compare them with their owners), `peernix team add <public key>` adds one (or the window's Add to team). A Nix or cache pointed straight at this machine only ever gets public paths.",
  };
}

function shareCheck(f: DoctorFacts): DoctorCheck {
  const snap = f.peernix.snapshot;
  const base = { id: 'share.listening', group: 'peernix', title: 'Share listener accepting connections' } as const;
  if (snap && !snap.status.sharing) {
    return {
      ...base,
      status: 'warn',
      detail: `Sharing is off${snap.status.shareError ? `: ${snap.status.shareError}` : ''}. Peers can't fetch from this machine (this machine can still fetch from them).`,
      fix: "Turn it on: `peernix sharing on` (or the window's switch).",
    };
  }
  const probe = f.shareProbe;
  if (!probe) return { ...base, status: 'unknown', detail: 'No share port to try.', fix: null };
  if (probe.listening) return { ...base, status: 'ok', detail: `Port ${probe.port} accepts connections (tried over loopback).`, fix: null };
  return {
    ...base,
    status: 'fail',
    detail:
      `Nothing accepts connections on port ${probe.port}: ${probe.error ?? 'refused'}.` +
      (snap?.status.shareError ? ` Peernix says: ${snap.status.shareError}.` : ''),
    fix: snap
      ? `Turn sharing off and on again (\`peernix sharing off && peernix sharing on\`); if the port is held by another program, stop it or set another \`shareListen\` in settings.json.`
      : 'Start Peernix (`peernix serve`) with sharing on.',
  };
}

// A connection from this host to its own share port goes over loopback and proves nothing about
// the firewall. Evidence comes only from the LAN: a peer that fetched from us, or one that was asked
// to connect back (reach-back.ts) and said whether it got through.
function lanCheck(f: DoctorFacts): DoctorCheck {
  const base = { id: 'share.lan', group: 'lan', title: 'Share listener reachable from the LAN' } as const;
  const snap = f.peernix.snapshot;
  const port = f.shareProbe?.port ?? 9999;
  const fetchedBy = snap?.peers.filter((p) => p.bytesTo > 0) ?? [];
  const answered = f.reachBack.filter((r) => r.answer !== null);
  const reached = answered.filter((r) => r.answer!.reachable);
  const open = `open TCP port ${port} (e.g. \`sudo ufw allow ${port}/tcp\`, or \`sudo firewall-cmd --add-port=${port}/tcp --permanent && sudo firewall-cmd --reload\`)`;
  const blocked = answered.filter((r) => !r.answer!.reachable);
  if (reached.length > 0 || fetchedBy.length > 0) {
    const how = [
      ...reached.map((r) => `${r.peer} connected back (${r.answer!.detail})`),
      ...fetchedBy.map((p) => `${p.name} fetched ${p.bytesTo} bytes from it`),
    ];
    if (blocked.length === 0) return { ...base, status: 'ok', detail: `Seen from the LAN: ${how.join('; ')}.`, fix: null };
    // Some get through and some don't: a firewall between some of them (another subnet, a host rule).
    return {
      ...base,
      status: 'warn',
      detail: `Seen from part of the LAN only: ${how.join('; ')}; but ${blocked.map((r) => `${r.peer}: ${r.answer!.detail}`).join('; ')}.`,
      fix: `Let those peers reach port ${port}: ${open}, or check the network between them.`,
    };
  }
  if (answered.length > 0) {
    return {
      ...base,
      status: 'fail',
      detail: `Peers could not reach it: ${answered.map((r) => `${r.peer}: ${r.answer!.detail}`).join('; ')}. They find this machine but can't fetch from it.`,
      fix: `Let the LAN reach port ${port}: ${open}.`,
    };
  }
  return {
    ...base,
    status: 'unknown',
    detail: `Can't tell from this host: a connection from here goes over loopback and says nothing about a firewall, no peer has fetched from this machine since Peernix started${f.reachBack.length > 0 ? ', and the peers asked to connect back could not say' : ', and no peer is up to ask to connect back'}.`,
    fix: `From another machine on the LAN: \`curl http://<this machine's address>:${port}/nix-cache-info\`. If it times out, ${open}.`,
  };
}

function mdnsAndPeers(f: DoctorFacts): DoctorCheck[] {
  const snap = f.peernix.snapshot!;
  const checks: DoctorCheck[] = [];
  const st = snap.status;
  if (!st.mdns) {
    checks.push({
      id: 'lan.mdns',
      group: 'lan',
      title: 'mDNS',
      status: 'warn',
      detail: 'mDNS is off: peers are only those given with --peer or in settings.json.',
      fix: 'Turn it on: remove --no-mdns, or set "mdns": true in settings.json.',
    });
  } else if (st.mdnsSelfSeenAt) {
    checks.push({
      id: 'lan.mdns',
      group: 'lan',
      title: 'mDNS',
      status: 'ok',
      detail: `Working: this host's own announcement came back (${new Date(st.mdnsSelfSeenAt).toISOString()}).`,
      fix: null,
    });
  } else if (st.mdnsSelfSeenAt === undefined) {
    checks.push({
      id: 'lan.mdns',
      group: 'lan',
      title: 'mDNS',
      status: 'unknown',
      detail: 'This Peernix does not report whether its own announcement came back.',
      fix: null,
    });
  } else if (st.sharing) {
    checks.push({
      id: 'lan.mdns',
      group: 'lan',
      title: 'mDNS',
      status: 'warn',
      detail:
        "This host's own announcement has not come back: multicast may be blocked here (a firewall dropping UDP 5353, or an interface without multicast).",
      fix: 'Allow mDNS: `sudo ufw allow 5353/udp` (or `sudo firewall-cmd --add-service=mdns --permanent && sudo firewall-cmd --reload`); on macOS allow Local Network access for Peernix.',
    });
  } else {
    checks.push({
      id: 'lan.mdns',
      group: 'lan',
      title: 'mDNS',
      status: 'unknown',
      detail: 'Sharing is off, so nothing is announced to see come back.',
      fix: null,
    });
  }
  const up = snap.peers.filter((p) => p.state === 'up');
  if (snap.peers.length === 0) {
    checks.push({
      id: 'lan.peers',
      group: 'lan',
      title: 'Peers found',
      status: 'warn',
      detail: 'No peers yet: nothing can be fetched from the LAN.',
      fix: st.mdns
        ? 'Start Peernix on another machine of this LAN, or add one with `peernix serve --peer http://HOST:9999`.'
        : 'Add a peer with `peernix serve --peer http://HOST:9999`, or turn mDNS on.',
    });
  } else {
    const lines = snap.peers.map(
      (p) => `${p.name} ${p.state}${p.verified ? '' : ', identity not proven'}, key ${p.publicKey ?? 'none'} ${p.trusted ? 'trusted' : 'not trusted'}`,
    );
    checks.push({
      id: 'lan.peers',
      group: 'lan',
      title: 'Peers found',
      status: up.length > 0 ? 'ok' : 'warn',
      detail: `${up.length} of ${snap.peers.length} up: ${lines.join('; ')}.`,
      fix: up.length > 0 ? null : 'They are known but not answering: see `peernix status`.',
    });
    const untrusted = snap.peers.filter((p) => p.verified && !p.trusted && p.publicKey);
    if (untrusted.length > 0) {
      checks.push({
        id: 'lan.peer-keys',
        group: 'lan',
        title: "Peers' keys trusted",
        status: 'warn',
        detail: `Not trusted here: ${untrusted.map((p) => p.name).join(', ')}. Paths they built themselves (signed only by their key) are refused; paths that keep cache.nixos.org's signature are fine.`,
        fix: `If you trust them, add to ${f.system.files[0] ?? '/etc/nix/nix.conf'}:\nextra-trusted-public-keys = ${untrusted.map((p) => p.publicKey).join(' ')}\nthen restart the nix-daemon.`,
      });
    }
  }
  return checks;
}
