import { request, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from '../base/log.ts';
import { ClaimedNarSlots, isClaimAnswer } from '../base/nar-slot-claims.ts';
import { PortDuplex } from '../base/port-duplex.ts';
import { askerClassifier } from '../cache/asker-class.ts';
import { Unavailable, writeError } from '../cache/http-error.ts';
import { listen, type HttpListener } from '../cache/http-listener.ts';
import { LocalBackend } from '../cache/local-backend.ts';
import { markLongPoll } from '../cache/long-poll.ts';
import { createRealisationHandler, realisationOutput } from '../cache/realisation-route.ts';
import type { RouteHandler } from '../cache/route-table.ts';
import { createRealisationSource } from '../domain/realisations.ts';
import { parseSecretKey } from '../nix/signing.ts';
import { LocalStore } from '../store/local-store.ts';
import { PathScopes } from '../store/path-scope.ts';
import { parseStoreUri } from '../store/store-uri.ts';
import type { FromWorker, MetricCall, ShareWorkerData, ToWorker } from './share-loop-messages.ts';
import { shareServe, type ShareMetrics } from './share-serve.ts';

// One more event loop for the share listener (share-loops.ts starts it): its own listener on the
// shared port, its own store database handle and daemon connections, the one route table
// (share-serve.ts). NAR slots are claimed from the main thread, so the caps stay global; the routes
// whose state lives in the main thread (summaries, reach-back, metrics) are relayed to it as requests.

const data = workerData as ShareWorkerData;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);

const log = portLogger(data.debug, `share loop ${data.loop}`);
const store = new LocalStore({ location: parseStoreUri(data.storeUri), narSource: data.narSource });
store.onDaemonChange = (down) => send({ t: 'daemon', down });
const key = parseSecretKey(data.secretKey);
const local = new LocalBackend(store, key, data.verifyLocalNars);
const scopes = new PathScopes({ publicKeys: data.publicKeys, exclude: data.exclude });
scopes.countRefusal = (scope) => send({ t: 'refused', scope });
let teamKeys: ReadonlySet<string> = new Set(data.teamKeys);
const slots = new ClaimedNarSlots(send);
const metrics = metricsRelay();

const realisations = createRealisationSource({ local: store, key, log });
const pipes = new Map<number, PortDuplex>();
let nextPipe = 1;
const relay = relayToMain();

const tracked = new Map<number, { bytes: () => number; wireBytes: () => number | undefined }>();
let nextTrack = 1;
// The main thread samples transfers on its own timer: each worker's progress reaches it at about that
// rate, and only while it streams (an idle loop wakes for nothing).
let progress: NodeJS.Timeout | null = null;
const reportProgress = () => {
  if (tracked.size === 0) {
    if (progress) clearInterval(progress);
    progress = null;
    return;
  }
  send({ t: 'progress', rows: [...tracked].map(([id, t]) => [id, t.bytes(), t.wireBytes() ?? null]) });
};

const serve = shareServe({
  local,
  metrics,
  narSlots: slots,
  onNarSent: (info) => send({ t: 'sent', ...info }),
  trackNar: ({ remoteAddress, storePath, total, bytes, wireBytes }) => {
    const id = nextTrack++;
    tracked.set(id, { bytes, wireBytes });
    send({ t: 'track', id, remoteAddress, storePath, total });
    progress ??= setInterval(reportProgress, 250);
    return {
      end: (outcome) => {
        if (!tracked.delete(id)) return;
        send({ t: 'progress', rows: [[id, bytes(), wireBytes() ?? null]] });
        send({ t: 'untrack', id, outcome });
      },
    };
  },
  identity: { instanceId: data.instanceId, key },
  summary: relay,
  reachBack: relay,
  metricsHandler: data.metricsOnShare ? relay : null,
  realisation: createRealisationHandler(realisations, log),
  realisationPath: realisationOutput(realisations),
  scopes,
  classify: askerClassifier(() => teamKeys),
  log,
});

let listener: HttpListener | null = null;

port.on('message', (m: ToWorker) => {
  if (isClaimAnswer(m)) return slots.handle(m);
  if (m.t === 'pipe') return pipes.get(m.id)?.receive(m);
  if (m.t === 'team') {
    teamKeys = new Set(m.keys);
    return;
  }
  if (m.t === 'daemon') return store.daemonFound(m.down);
  void operate(m).then(
    (value) => send({ t: 'done', rid: m.rid, value }),
    (e: Error) => send({ t: 'done', rid: m.rid, error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim() }),
  );
});

async function operate(m: Extract<ToWorker, { t: 'op' }>): Promise<number | undefined> {
  switch (m.op) {
    case 'listen':
      listener = await listen({
        host: m.host,
        port: m.port,
        reusePort: true,
        // shareServe counts each request in the metrics.
        handler: serve,
        log,
        stallMs: data.stallMs,
        tls: data.tls,
      });
      return listener.port;
    case 'close': {
      const l = listener;
      listener = null;
      await l?.close(m.graceMs);
      return;
    }
    case 'cut':
      listener?.cutAll();
      return;
    case 'accepted':
      return (await listener?.accepted())?.[0] ?? 0;
    case 'stop':
      // The main thread ends the thread once this is answered.
      slots.close();
      await listener?.close(0);
      if (progress) clearInterval(progress);
      metrics.flush();
      await store.close();
      return;
  }
}

/** The route handler for what only the main thread answers: the request goes there over a message stream, the answer comes back. */
function relayToMain(): RouteHandler {
  return (req: IncomingMessage, res: ServerResponse, match) =>
    new Promise<void>((resolve) => {
      // No NAR transfer: a stop cuts it at once rather than letting it run for the grace (a summary's
      // long poll, a reach-back's wait, as on the main thread).
      markLongPoll(res);
      const id = nextPipe++;
      const pipe = new PortDuplex(id, send);
      pipes.set(id, pipe);
      pipe.once('close', () => pipes.delete(id));
      send({ t: 'relay', id, address: req.socket.remoteAddress ?? '', asker: match.asker ?? 'anonymous' });
      const headers: OutgoingHttpHeaders = { ...req.headers, connection: 'close' };
      // No agent: with one, Node would ignore createConnection and dial a TCP port.
      const out = request({ createConnection: () => pipe as never, method: req.method, path: req.url, headers });
      out.on('response', (answer) => {
        const h = { ...answer.headers };
        // Hop by hop: this listener frames its own answer on its own connection.
        delete h.connection;
        delete h['keep-alive'];
        delete h['transfer-encoding'];
        res.writeHead(answer.statusCode ?? 502, h);
        answer.pipe(res);
        answer.once('end', resolve);
        answer.once('error', () => (res.destroy(), resolve()));
      });
      out.on('error', (e) => {
        if (!res.headersSent) writeError(res, new Unavailable('busy, try again', { retryAfterS: 1, logMessage: `relay to the main thread: ${e.message}` }));
        else res.destroy();
        resolve();
      });
      res.once('close', () => {
        out.destroy();
        resolve();
      });
      out.end();
    });
}

// Batched: a message per request would cost the main thread more than the request itself.
function metricsRelay(): ShareMetrics & { flush(): void } {
  let calls: MetricCall[] = [];
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (calls.length > 0) send({ t: 'metrics', calls });
    calls = [];
  };
  const add = (c: MetricCall) => {
    calls.push(c);
    if (calls.length >= 512) flush();
    else timer ??= setTimeout(flush, 250);
  };
  return {
    flush,
    countRequest: (_listener, url) => add(['countRequest', url]),
    countAnswer: (_listener, route, source) => add(['countAnswer', route, source]),
    observeLookup: (_listener, source, seconds) => add(['observeLookup', source, seconds]),
    narsInFlight: { inc: () => add(['narsInFlight', 1]), dec: () => add(['narsInFlight', -1]) },
    transferSeconds: { observe: ({ source, outcome }, seconds) => add(['transferSeconds', source, outcome, seconds]) },
  };
}

function portLogger(debugEnabled: boolean, scope: string): Logger {
  const line = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string) => send({ t: 'log', level, msg: `${scope}: ${msg}` });
  const logger: Logger = {
    debugEnabled,
    debug: debugEnabled ? line('debug') : () => {},
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (child) => portLogger(debugEnabled, `${scope} ${child}`),
  };
  return logger;
}
