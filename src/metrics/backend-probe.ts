import type { CacheBackend, NarBody } from '../cache/backend.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import type { Listener, PeernixMetrics } from './metrics.ts';

// A listener's backend, seen from outside: every narinfo and NAR answer is counted by where it came
// from and timed, and NAR bodies are tracked until released. The backend is unchanged; a narinfo
// answered synchronously stays synchronous (the hottest route pays no event-loop turn for this).

/** What the probe records on: the metrics, or their relay from another event loop (app/share-loop-relay.ts). */
export interface ProbeMetrics {
  countAnswer: PeernixMetrics['countAnswer'];
  observeLookup: PeernixMetrics['observeLookup'];
  narsInFlight: { inc(labels: { listener: Listener }): void; dec(labels: { listener: Listener }): void };
  transferSeconds: { observe(labels: { listener: Listener; source: string; outcome: string }, seconds: number): void };
}

export interface ProbeOptions {
  listener: Listener;
  metrics: ProbeMetrics;
  /** Where the answer for this path came from, once answered: the local store or a peer. */
  sourceOf: (hashPart: string) => 'local' | 'peer';
}

export function probeBackend(backend: CacheBackend, opts: ProbeOptions): CacheBackend {
  const { listener, metrics } = opts;
  const answered = (route: 'narinfo' | 'nar', source: 'local' | 'peer' | 'miss' | 'error') => metrics.countAnswer(listener, route, source);

  return {
    narInfo(hashPart) {
      const t0 = performance.now();
      const done = (info: NarInfo | null) => {
        const source = info ? opts.sourceOf(hashPart) : 'miss';
        answered('narinfo', source);
        metrics.observeLookup(listener, source, (performance.now() - t0) / 1000);
        return info;
      };
      const failed = (e: unknown): never => {
        answered('narinfo', 'error');
        metrics.observeLookup(listener, 'error', (performance.now() - t0) / 1000);
        throw e;
      };
      let answer;
      try {
        answer = backend.narInfo(hashPart);
      } catch (e) {
        return failed(e);
      }
      return answer instanceof Promise ? answer.then(done, failed) : done(answer);
    },

    async nar(hashPart, narHash, narOpts) {
      const t0 = performance.now();
      let body: NarBody | null;
      try {
        body = await backend.nar(hashPart, narHash, narOpts);
      } catch (e) {
        answered('nar', 'error');
        throw e;
      }
      // A client that left was answered nothing: not a miss.
      if (!body && narOpts?.signal?.aborted) return null;
      if (!body) {
        answered('nar', 'miss');
        return null;
      }
      const source = opts.sourceOf(hashPart);
      answered('nar', source);
      metrics.narsInFlight.inc({ listener });
      const inner = body;
      let released = false;
      return {
        ...inner,
        stream: () => inner.stream(),
        streamFrom: inner.streamFrom ? (start: number, end?: number) => inner.streamFrom!(start, end) : undefined,
        release(reason) {
          if (!released) {
            released = true;
            metrics.narsInFlight.dec({ listener });
            metrics.transferSeconds.observe({ listener, source, outcome: reason ?? 'done' }, (performance.now() - t0) / 1000);
          }
          inner.release(reason);
        },
      };
    },
  };
}
