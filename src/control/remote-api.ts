// A PeernixApi for a Peernix that runs in another process on this machine (`peernix serve`, a
// service): the tray app becomes its tray and window instead of failing on its busy port. Snapshot
// and changes come over the control API (JSON + Server-Sent Events), sharing needs the control token.
import type { ApiChange, PeernixApi, Snapshot } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import { clearPeerBad, fetchSnapshot, networkAction, noticeSeen, setSharing, shareWhy, teamAction } from './client.ts';
import { CONTROL_API, TOKEN_META_NAME } from './contract.ts';

export interface RemoteApi extends PeernixApi {
  readonly baseUrl: string;
  /** Called once when the other Peernix stops answering (it stopped, or was stopped). */
  onLost(listener: (why: string) => void): void;
}

/** Whether the Peernix at baseUrl is controlled by `token` (its dashboard page carries it). */
export async function tokenMatches(baseUrl: string, token: string): Promise<boolean> {
  const page = await getText(new URL('/peernix/', baseUrl).href);
  const m = new RegExp(`<meta name="${TOKEN_META_NAME}" content="([0-9a-f]+)">`).exec(page);
  return m !== null && m[1] === token;
}

export async function connectRemoteApi(baseUrl: string, token: string, log: Logger): Promise<RemoteApi> {
  let snap: Snapshot = await fetchSnapshot(baseUrl);
  const listeners = new Set<(c: ApiChange) => void>();
  const lostListeners: ((why: string) => void)[] = [];
  const notify = (c: ApiChange) => {
    for (const l of listeners) l(c);
  };
  let closed = false;
  let refreshing = false;
  let again = false;
  // Changes come in bursts; one snapshot fetch at a time, one more if something changed meanwhile.
  const refresh = async () => {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      do {
        again = false;
        snap = await fetchSnapshot(baseUrl);
        notify({ topic: 'status' });
      } while (again && !closed);
    } catch (e) {
      log.debug(`remote snapshot: ${(e as Error).message}`);
    } finally {
      refreshing = false;
    }
  };

  const stream = new AbortController();
  const lose = (why: string) => {
    if (closed) return;
    closed = true;
    stream.abort();
    log.warn(`lost the Peernix at ${baseUrl}: ${why}`);
    for (const l of lostListeners) l(why);
  };
  const onChange = (data: string) => {
    try {
      const change = JSON.parse(data) as ApiChange;
      if (change.topic === 'event') notify(change);
      // Progress carries its own data and comes often: no snapshot refetch for it.
      if (change.topic === 'transfers') {
        snap = { ...snap, transfers: change.transfers, lan: change.lan };
        notify(change);
        return;
      }
      void refresh();
    } catch {
      log.debug(`remote change stream: not JSON: ${data.slice(0, 80)}`);
    }
  };
  void (async () => {
    try {
      const res = await fetch(new URL(CONTROL_API.changes, baseUrl), { headers: { accept: 'text/event-stream' }, redirect: 'error', signal: stream.signal });
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel();
        return lose(`change stream answered ${res.status}`);
      }
      let buf = '';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        buf += r.value;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (data) onChange(data);
        }
      }
      lose('it closed the change stream (stopped?)');
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      lose(err.cause?.code ?? err.message);
    }
  })();

  return {
    baseUrl,
    onLost: (l) => void lostListeners.push(l),
    snapshot: () => snap,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clearPeerBad: (id) => clearPeerBad(baseUrl, token, id),
    network: (action) => networkAction(baseUrl, token, action),
    team: (action) => teamAction(baseUrl, token, action),
    noticeSeen: (id) => noticeSeen(baseUrl, token, id),
    shareWhy: (pathOrHash) => shareWhy(baseUrl, pathOrHash),
    async setSharing(on) {
      await setSharing(baseUrl, token, on);
      await refresh();
    },
    // Detaches from the other Peernix; it keeps running.
    async stop() {
      closed = true;
      stream.abort();
    },
  };
}

async function getText(url: string): Promise<string> {
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return body;
}
