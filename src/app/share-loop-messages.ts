import type { ClaimAnswer, ClaimRequest } from '../base/nar-slot-claims.ts';
import type { PipeMessage } from '../base/port-duplex.ts';
import type { AskerClass } from '../cache/asker-class.ts';
import type { PathScope } from '../store/path-scope.ts';

// What crosses between the main thread and a share worker (share-loops.ts, share-worker.ts). Live
// state goes to the worker (the team's keys, whether the daemon is down as another loop found it;
// listen and close, together with every other loop); what
// the app counts and shows comes back (sent NARs, transfers in progress, metrics, scope refusals, log
// lines), with NAR slot claims on the one NarSlots and relayed requests for the routes only the main
// thread can answer (summaries, reach-back, metrics).

export interface ShareWorkerData {
  loop: number;
  storeUri: string;
  narSource?: 'filesystem' | 'daemon';
  verifyLocalNars?: boolean;
  /** The identity key as Nix writes it ("name:base64"), for the narinfo signatures and the identity route. */
  secretKey: string;
  instanceId: string;
  publicKeys: readonly string[];
  exclude: readonly string[];
  teamKeys: string[];
  stallMs: number;
  tls?: { cert: string; key: string };
  metricsOnShare: boolean;
  debug: boolean;
}

export type ToWorker =
  | ClaimAnswer
  | PipeMessage
  | { t: 'team'; keys: string[] }
  | { t: 'daemon'; down: boolean }
  | { t: 'op'; rid: number; op: 'listen'; host: string; port: number }
  | { t: 'op'; rid: number; op: 'close'; graceMs: number }
  | { t: 'op'; rid: number; op: 'cut' | 'accepted' | 'stop' };

export type FromWorker =
  | ClaimRequest
  | PipeMessage
  | { t: 'done'; rid: number; error?: string; value?: number }
  | { t: 'relay'; id: number; address: string; asker: AskerClass }
  | { t: 'sent'; remoteAddress: string; storePath: string; bytes: number; wireBytes: number; ok: boolean }
  | { t: 'track'; id: number; remoteAddress: string; storePath: string; total: number }
  | { t: 'progress'; rows: [id: number, bytes: number, wireBytes: number | null][] }
  | { t: 'untrack'; id: number; outcome: 'ok' | 'failed' | 'aborted' }
  | { t: 'metrics'; calls: MetricCall[] }
  | { t: 'refused'; scope: PathScope }
  | { t: 'daemon'; down: boolean }
  | { t: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string };

export type MetricCall =
  | ['countRequest', string | undefined]
  | ['countAnswer', 'narinfo' | 'nar', 'local' | 'peer' | 'miss' | 'error']
  | ['observeLookup', 'local' | 'peer' | 'miss' | 'error', number]
  | ['narsInFlight', 1 | -1]
  | ['transferSeconds', string, string, number];
