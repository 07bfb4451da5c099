import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FallbackReason, LanTally, PeernixEvent, PeerView, ScopeCountsView } from '../base/api.ts';
import type { Peer } from '../peers/registry.ts';
import { PeerByteLabels } from './peer-labels.ts';

// Every figure Peernix exports to Prometheus, on a registry of its own (several cores may run in one
// process: tests, and nothing global may leak between them). The values come from the event stream
// and from reading the registry and status when scraped (architecture rule 8): no module counts for
// metrics' sake, except the two listeners' answers, seen by wrapping their backends (backend-probe.ts).

export type Listener = 'substituter' | 'share';
export type AnswerSource = 'local' | 'peer' | 'miss' | 'error';
export type AnswerRoute = 'narinfo' | 'nar';

export interface MetricsSources {
  /** The peers known now (the registry's own objects, with their running byte totals). */
  peers: () => Iterable<Peer>;
  /** Their views (state as shown, verified). */
  peerViews: () => PeerView[];
  sharing: () => boolean;
  daemonUp: () => boolean;
  subscribe: (listener: (e: PeernixEvent) => void) => () => void;
  /** What the LAN did today (local time), from the totals the window shows. */
  lanToday?: () => LanTally;
  /** Most peers with their own label; the rest count as peer="other". */
  peerLabelCap?: number;
  /** Scoped sharing: paths judged by scope, and requests answered as absent by the path's scope. */
  scopes?: () => ScopeCountsView;
}

const FALLBACK_REASONS: FallbackReason[] = ['gc', 'peer-gone', 'peer-failed', 'mismatch', 'none'];
const LOOKUP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const TRANSFER_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class PeernixMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'listener' | 'route'>;
  readonly answers: Counter<'listener' | 'route' | 'source'>;
  readonly lookupSeconds: Histogram<'listener' | 'source'>;
  readonly transferSeconds: Histogram<'listener' | 'source' | 'outcome'>;
  readonly narsInFlight: Gauge<'listener'>;
  readonly narBytesSent: Counter<'listener'>;
  private readonly unsubscribe: () => void;
  private readonly labels: PeerByteLabels;
  private readonly requestCounts = new Map<string, number>();
  private readonly answerCounts = new Map<string, number>();
  private readonly takeDeltas: (peers: Iterable<Peer>) => void;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    this.labels = new PeerByteLabels(src.peerLabelCap);
    // The two counters every request touches are kept as plain numbers (prom-client hashes the label
    // object on each inc) and handed over when scraped.
    const requestCounts = this.requestCounts;
    const answerCounts = this.answerCounts;
    this.requests = new Counter({
      name: 'peernix_requests_total',
      help: 'HTTP requests by listener and binary-cache route (cache-info, narinfo, nar, other).',
      labelNames: ['listener', 'route'],
      registers,
      collect() {
        handOver(this, requestCounts, ['listener', 'route']);
      },
    });
    this.answers = new Counter({
      name: 'peernix_answers_total',
      help: 'narinfo and NAR requests by where the answer came from: local store, a peer, nowhere (miss) or an error.',
      labelNames: ['listener', 'route', 'source'],
      registers,
      collect() {
        handOver(this, answerCounts, ['listener', 'route', 'source']);
      },
    });
    this.lookupSeconds = new Histogram({
      name: 'peernix_lookup_duration_seconds',
      help: 'Time to answer a narinfo request, by where the answer came from.',
      labelNames: ['listener', 'source'],
      buckets: LOOKUP_BUCKETS,
      registers,
    });
    this.transferSeconds = new Histogram({
      name: 'peernix_nar_transfer_duration_seconds',
      help: 'Time from a NAR request to the end of its body, by source and how it ended.',
      labelNames: ['listener', 'source', 'outcome'],
      buckets: TRANSFER_BUCKETS,
      registers,
    });
    this.narsInFlight = new Gauge({ name: 'peernix_nars_in_flight', help: 'NAR bodies being served now.', labelNames: ['listener'], registers });
    this.narBytesSent = new Counter({
      name: 'peernix_nar_sent_bytes_total',
      help: 'NAR bytes sent to clients, by listener.',
      labelNames: ['listener'],
      registers,
    });

    const fallbacks = new Counter({
      name: 'peernix_fallbacks_total',
      help: 'Requests served elsewhere than the affinity cache said (or not at all), by reason and outcome.',
      labelNames: ['reason', 'outcome'],
      registers,
    });
    const transfers = new Counter({
      name: 'peernix_transfers_total',
      help: 'Finished NAR transfers with peers, by direction (in: fetched, out: served) and outcome.',
      labelNames: ['direction', 'outcome'],
      registers,
    });
    // NAR bytes against bytes on the wire: what compression between Peernix peers saved.
    const transferNar = new Counter({
      name: 'peernix_transfer_nar_bytes_total',
      help: 'NAR bytes of finished transfers with peers, by direction.',
      labelNames: ['direction'],
      registers,
    });
    const transferWire = new Counter({
      name: 'peernix_transfer_wire_bytes_total',
      help: 'Bytes on the network for finished transfers with peers (fewer than NAR bytes when a Peernix peer compressed them), by direction.',
      labelNames: ['direction'],
      registers,
    });
    const peerEvents = new Counter({ name: 'peernix_peer_transitions_total', help: 'Peers coming up and going down.', labelNames: ['transition'], registers });
    const labels = this.labels;
    const fetched = new Counter({
      name: 'peernix_peer_fetched_bytes_total',
      help: 'NAR bytes fetched from each peer that proved its identity; all others under peer="other".',
      labelNames: ['peer', 'peer_id'],
      registers,
      collect: () => this.takeDeltas(src.peers()),
    });
    const served = new Counter({
      name: 'peernix_peer_served_bytes_total',
      help: 'NAR bytes served to each peer that proved its identity; all others under peer="other".',
      labelNames: ['peer', 'peer_id'],
      registers,
      collect: () => this.takeDeltas(src.peers()),
    });
    // Both byte counters read the registry's running totals: whichever is collected first takes the
    // deltas for both, so neither counts a byte twice.
    this.takeDeltas = (peers) => {
      for (const d of labels.deltas(peers)) {
        if (d.from > 0) fetched.inc(d.label, d.from);
        if (d.to > 0) served.inc(d.label, d.to);
      }
    };
    new Gauge({
      name: 'peernix_peers',
      help: 'Known peers by state (up, suspect, gone) and whether they proved their identity.',
      labelNames: ['state', 'verified'],
      registers,
      collect() {
        this.reset();
        for (const state of ['up', 'suspect', 'gone']) for (const verified of ['true', 'false']) this.set({ state, verified }, 0);
        for (const p of src.peerViews()) this.inc({ state: p.state, verified: String(p.verified) });
      },
    });
    new Gauge({
      name: 'peernix_peer_labels',
      help: 'Peers with their own label in the byte counters (capped).',
      registers,
      collect() {
        this.set(labels.labelCount());
      },
    });
    const scopes = src.scopes;
    if (scopes) {
      new Gauge({
        name: 'peernix_scope_paths',
        help: 'Paths of this store judged since start, by scope (public, team, never).',
        labelNames: ['scope'],
        registers,
        collect() {
          for (const [scope, n] of Object.entries(scopes().judged)) this.set({ scope }, n);
        },
      });
      new Counter({
        name: 'peernix_scope_refused_total',
        help: 'Requests answered as if the path were absent because the asker may not see it, by the path’s scope.',
        labelNames: ['scope'],
        registers,
        collect() {
          handOver(this, new Map(Object.entries(scopes().refused)), ['scope']);
        },
      });
    }
    const today = src.lanToday;
    if (today) {
      // Gauges, not counters: they start again at local midnight, as the window's "today" does.
      new Gauge({
        name: 'peernix_lan_today_bytes',
        help: 'NAR bytes fetched from peers (in) and served to them (out) today, local time.',
        labelNames: ['direction'],
        registers,
        collect() {
          const t = today();
          this.set({ direction: 'in' }, t.fetchedBytes);
          this.set({ direction: 'out' }, t.servedBytes);
        },
      });
      new Gauge({
        name: 'peernix_lan_today_paths',
        help: 'Store paths fetched from peers (in) and served to them (out) today, local time.',
        labelNames: ['direction'],
        registers,
        collect() {
          const t = today();
          this.set({ direction: 'in' }, t.fetchedPaths);
          this.set({ direction: 'out' }, t.servedPaths);
        },
      });
    }
    new Gauge({
      name: 'peernix_sharing',
      help: '1 while this store is shared with the LAN.',
      registers,
      collect() {
        this.set(src.sharing() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'peernix_nix_daemon_up',
      help: '1 while the local nix-daemon answers.',
      registers,
      collect() {
        this.set(src.daemonUp() ? 1 : 0);
      },
    });

    // Series that exist from the start, so a rate() over them has a zero to start from.
    for (const listener of ['substituter', 'share'] as const) {
      this.narsInFlight.set({ listener }, 0);
      this.narBytesSent.inc({ listener }, 0);
      for (const route of ['narinfo', 'nar'] as const)
        for (const source of ['local', 'peer', 'miss', 'error'] as const) answerCounts.set(`${listener}|${route}|${source}`, 0);
    }
    for (const reason of FALLBACK_REASONS) for (const outcome of ['served', 'not-found', 'failed']) fallbacks.inc({ reason, outcome }, 0);

    this.unsubscribe = src.subscribe((e) => {
      switch (e.type) {
        case 'fallback':
          fallbacks.inc({ reason: e.reason, outcome: e.outcome });
          break;
        case 'transfer':
          transfers.inc({ direction: e.direction, outcome: e.outcome });
          transferNar.inc({ direction: e.direction }, e.bytes);
          transferWire.inc({ direction: e.direction }, e.wireBytes);
          break;
        case 'peer-up':
          peerEvents.inc({ transition: 'up' });
          break;
        case 'peer-down':
          peerEvents.inc({ transition: 'down' });
          break;
      }
    });
  }

  /** One HTTP request on a listener, by the binary-cache route its URL looks like (a cheap look: the
   * handler does the exact match; a label only needs to be one of a few). */
  countRequest(listener: Listener, url: string | undefined): void {
    bump(this.requestCounts, `${listener}|${routeOf(url ?? '')}`);
  }

  /** A narinfo or NAR answer, by where it came from. */
  countAnswer(listener: Listener, route: AnswerRoute, source: AnswerSource): void {
    bump(this.answerCounts, `${listener}|${route}|${source}`);
  }

  /** A narinfo answered after `seconds`. */
  observeLookup(listener: Listener, source: AnswerSource, seconds: number): void {
    this.lookupSeconds.observe({ listener, source }, seconds);
  }

  /** Counts what a peer moved since the last scrape before the registry forgets it. */
  peerRemoved(peer: Peer): void {
    this.takeDeltas([peer]);
  }

  /** The text exposition format. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.unsubscribe();
  }
}

function routeOf(url: string): 'cache-info' | 'narinfo' | 'nar' | 'other' {
  if (url.endsWith('.narinfo')) return 'narinfo';
  if (url.endsWith('.nar') || url.includes('.nar?')) return 'nar';
  if (url.endsWith('/nix-cache-info')) return 'cache-info';
  return 'other';
}

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Sets a counter to the totals kept in `counts` (keys are label values joined by "|"). */
function handOver(counter: Counter<string>, counts: Map<string, number>, names: string[]): void {
  counter.reset();
  for (const [key, n] of counts) {
    const values = key.split('|');
    counter.inc(Object.fromEntries(names.map((name, i) => [name, values[i]])), n);
  }
}
