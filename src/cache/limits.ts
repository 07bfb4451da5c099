// Every limit the HTTP listeners enforce, named in one place.
//
// NAR streams: a normal Nix opens at most 25 connections to a cache (http-connections) and runs at most
// 16 substitutions at once (max-substitution-jobs), and a Peernix requester proxies no more than its
// own Nix asks for, so one address never needs more than that; 32 per address and 48 overall serve
// three such clients at full tilt. Each stream costs a nix-daemon process, a few fds and 1–2 MB of
// buffers, so the overall cap is also what keeps 100 concurrent downloads under 200 MB of RSS. Over the cap a request waits a
// moment for a slot and then gets 503, which a Peernix requester takes as "try another holder". The
// wait stays under the peer client's 3 s header timeout so the requester sees the 503 rather than
// giving up on its own. Nix 2.8 ignores Retry-After and fails after five 5xx answers: the cap must sit
// far above what one Nix asks for, never near it.
//
// Stall: a response whose socket takes no bytes for this long is cut, as nginx's send_timeout (60 s),
// and the transfer's daemon connection and GC temp root go with it.
//
// PEERNIX_LIMITS (e.g. "stallMs=2000,narStreams=8") overrides any of them; the end-to-end tests use
// it to make the limits small enough to reach quickly. It is read here and nowhere else.

export interface ListenerLimits {
  /** Concurrent NAR streams on the share listener. */
  narStreams: number;
  /** Concurrent NAR streams from one client address. */
  narStreamsPerAddress: number;
  /** Requests allowed to wait for a stream slot; past that, 503 at once. */
  narQueue: number;
  /** Longest wait for a stream slot before 503. */
  narQueueWaitMs: number;
  /** A response whose socket takes no bytes for this long is cut. */
  stallMs: number;
}

export const DEFAULT_LIMITS: Readonly<ListenerLimits> = Object.freeze({
  narStreams: 48,
  narStreamsPerAddress: 32,
  narQueue: 64,
  narQueueWaitMs: 2000,
  stallMs: 60_000,
});

/** Parses "key=value,key=value" over the defaults; unknown keys and non-positive numbers are errors. */
export function parseLimits(text: string | undefined, base: Readonly<ListenerLimits> = DEFAULT_LIMITS): ListenerLimits {
  const out: ListenerLimits = { ...base };
  if (!text?.trim()) return out;
  for (const part of text.split(',')) {
    const m = /^\s*(\w+)\s*=\s*(\d{1,9})\s*$/.exec(part);
    if (!m || !(m[1] in base)) throw new Error(`PEERNIX_LIMITS: cannot use "${part.trim()}" (known: ${Object.keys(base).join(', ')})`);
    const v = Number(m[2]);
    if (v < 1 && m[1] !== 'narQueue') throw new Error(`PEERNIX_LIMITS: ${m[1]} must be at least 1`);
    out[m[1] as keyof ListenerLimits] = v;
  }
  return out;
}

export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): ListenerLimits {
  return parseLimits(env.PEERNIX_LIMITS);
}
