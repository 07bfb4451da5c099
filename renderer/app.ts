// The window's state and wiring. Everything comes from a PeernixBridge: a snapshot to start, then
// changes. Topic changes refetch the snapshot (coalesced); events are appended as they arrive.
import type { ApiChange, NetworkAction, NoticeId, PeernixBridge, PeernixEvent, Snapshot, TeamAction } from '../src/base/api.ts';
import { byId } from './dom.ts';
import { renderConfig } from './views/config.ts';
import { renderEntries } from './views/entries.ts';
import { renderEvents } from './views/events.ts';
import { renderHeader } from './views/header.ts';
import { renderPeers } from './views/peers.ts';
import { renderLanTotals } from './views/totals.ts';
import { renderNetwork } from './views/network.ts';
import { renderTransfers } from './views/transfers.ts';
import { renderNetworks } from './views/networks.ts';
import { renderDnsSd } from './views/dnssd.ts';
import { renderNotice, renderTeam, wireTeamAdd } from './views/team.ts';

const MAX_EVENTS = 500;
const REFRESH_DELAY_MS = 150;
const AGE_TICK_MS = 10_000;

export function startApp(bridge: PeernixBridge): () => void {
  let snap: Snapshot | null = null;
  let problem: string | null = null;
  let pending = false;
  let refreshTimer: ReturnType<typeof setTimeout> | null = null;
  let refreshing = false;
  let refreshAgain = false;

  const search = byId<HTMLInputElement>('entries-search');
  const toggle = byId<HTMLInputElement>('sharing-toggle');
  const copy = byId<HTMLButtonElement>('copy-nixconf');

  const header = () => renderHeader({ status: snap?.status ?? null, peersKnown: snap?.peers.length ?? 0, pending, problem });
  const entries = () => renderEntries(snap?.entries ?? [], search.value, Date.now());
  const networkAct = bridge.network
    ? (action: NetworkAction) => {
        bridge.network!(action)
          .then(() => {
            problem = null;
          })
          .catch((err: unknown) => {
            problem = `could not change trusted networks: ${messageOf(err)}`;
          })
          .finally(() => {
            header();
            scheduleRefresh();
          });
      }
    : null;
  /** A change through the bridge: its failure is said in the status line, its result comes with the next snapshot. */
  const acting =
    <A>(what: string, call: ((a: A) => Promise<unknown>) | undefined) =>
    (a: A) => {
      if (!call) return;
      call(a)
        .then(() => {
          problem = null;
        })
        .catch((err: unknown) => {
          problem = `${what}: ${messageOf(err)}`;
        })
        .finally(() => {
          header();
          scheduleRefresh();
        });
    };
  const teamAct = bridge.team ? acting<TeamAction>('could not change the team', bridge.team.bind(bridge)) : null;
  const noticeSeen = bridge.noticeSeen ? acting<NoticeId>('could not put the notice away', bridge.noticeSeen.bind(bridge)) : null;
  wireTeamAdd(teamAct);
  const all = () => {
    header();
    renderNetwork(snap?.status ?? null, networkAct);
    renderNotice(snap?.status ?? null, teamAct, noticeSeen);
    renderTeam(snap?.status ?? null, teamAct);
    renderNetworks(snap?.status ?? null, networkAct);
    renderDnsSd(snap?.status ?? null);
    renderPeers(snap?.peers ?? [], snap?.status ?? null, teamAct);
    entries();
    renderEvents(snap?.events ?? []);
    renderConfig(snap?.status ?? null);
    live();
  };
  const live = () => {
    renderTransfers(snap?.transfers ?? []);
    renderLanTotals(snap?.lan);
  };

  async function refresh(): Promise<void> {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      const next = await bridge.snapshot();
      // Keep events that arrived live but are not (yet) in the snapshot's history.
      snap = { ...next, events: mergeEvents(next.events, snap?.events ?? []) };
      problem = null;
    } catch (err) {
      problem = `cannot reach Peernix (${messageOf(err)})`;
    } finally {
      refreshing = false;
    }
    all();
    if (refreshAgain) {
      refreshAgain = false;
      scheduleRefresh();
    }
  }

  function scheduleRefresh(): void {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      void refresh();
    }, REFRESH_DELAY_MS);
  }

  function onChange(change: ApiChange): void {
    if (change.topic === 'event') {
      if (snap) {
        snap = { ...snap, events: mergeEvents(snap.events, [change.event]) };
        renderEvents(snap.events);
      }
      if (change.event.type === 'sharing' || change.event.type === 'network' || change.event.type === 'team') scheduleRefresh();
      return;
    }
    // Progress carries its data: applied as it comes, no snapshot refetch.
    if (change.topic === 'transfers') {
      if (snap) {
        snap = { ...snap, transfers: change.transfers, lan: change.lan };
        live();
      }
      return;
    }
    scheduleRefresh();
  }

  toggle.addEventListener('change', () => {
    const want = toggle.checked;
    pending = true;
    header();
    bridge
      .setSharing(want)
      .then(() => {
        problem = null;
        if (snap) snap = { ...snap, status: { ...snap.status, sharing: want } };
      })
      .catch((err: unknown) => {
        problem = `could not turn sharing ${want ? 'on' : 'off'}: ${messageOf(err)}`;
      })
      .finally(() => {
        pending = false;
        header();
        scheduleRefresh();
      });
  });

  search.addEventListener('input', entries);

  copy.addEventListener('click', () => {
    const text = snap?.status.nixConf;
    if (!text) return;
    bridge
      .copyText(text.endsWith('\n') ? text : text + '\n')
      .then(() => flash(copy, 'Copied'))
      .catch(() => flash(copy, 'Copy failed'));
  });

  const unsubscribe = bridge.onChange(onChange);
  const tick = setInterval(entries, AGE_TICK_MS);
  all();
  void refresh();

  return () => {
    unsubscribe();
    clearInterval(tick);
    if (refreshTimer) clearTimeout(refreshTimer);
  };
}

function mergeEvents(base: PeernixEvent[], extra: PeernixEvent[]): PeernixEvent[] {
  const byId = new Map<number, PeernixEvent>();
  for (const e of base) byId.set(e.id, e);
  for (const e of extra) if (!byId.has(e.id)) byId.set(e.id, e);
  return [...byId.values()].sort((a, b) => a.id - b.id).slice(-MAX_EVENTS);
}

function flash(button: HTMLButtonElement, label: string): void {
  const original = button.dataset.label ?? button.textContent ?? '';
  button.dataset.label = original;
  button.textContent = label;
  setTimeout(() => {
    button.textContent = original;
  }, 1500);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
