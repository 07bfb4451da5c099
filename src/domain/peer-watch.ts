import { processBeat } from '../base/beat.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import type { PeerSummaries } from '../peers/peer-summaries.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import type { PeerHistory } from './peer-history.ts';

// How peers coming and going show: a log line, an event for the dashboard, the history's note of why
// a peer went down and its figures sampled over time. The store summary of every Peernix peer that
// has been up is followed (at its current URL) until it leaves; Go peers publish none (it would be
// asked for, and refused, forever).

export interface PeerWatchParts {
  registry: PeerRegistry;
  events: EventLog;
  history: PeerHistory;
  summaries: PeerSummaries;
  log: Logger;
  /** The peers' part of the snapshot changed. */
  changed: () => void;
}

/** Wires the registry's events to the parts that follow peers; returns a stop for the sampling. */
export function watchPeers(parts: PeerWatchParts): () => void {
  const { registry, events, history, summaries, log } = parts;
  registry.on('up', (p: Peer) => {
    log.info(`peer up: ${p.name} ${p.url}`);
    events.emit({ type: 'peer-up', peerId: p.id, peerName: p.name });
  });
  registry.on('down', (p: Peer, reason: string) => {
    log.info(`peer down: ${p.name} (${reason})`);
    history.noteDown(p.id, reason);
    events.emit({ type: 'peer-down', peerId: p.id, peerName: p.name, reason });
  });
  registry.on('changed', parts.changed);
  registry.on('up', (p: Peer) => p.dialect !== 'go' && summaries.follow(p.id, p.url));
  registry.on('moved', (p: Peer) => p.dialect !== 'go' && summaries.follow(p.id, p.url));
  registry.on('removed', (p: Peer) => summaries.unfollow(p.id));
  // On the process's beat (base/beat.ts): no wake-up of its own (#26 idle cost).
  return processBeat.every(history.intervalMs, () => history.sample(registry.views()));
}
