// PeernixBridge for the dashboard in a plain browser: fetch + EventSource against /peernix/api on
// the page's own origin. The control token comes from a <meta> the server adds to the page (the
// CSP allows no inline script); it is only needed for POSTs.
import type { ApiChange, NetworkStatusView, PeernixBridge, Snapshot, TeamView } from '../src/base/api.ts';
import { CONTROL_API, TOKEN_META_NAME } from '../src/control/contract.ts';

export function readPageToken(doc: Document = document): string | null {
  const meta = doc.querySelector<HTMLMetaElement>(`meta[name="${TOKEN_META_NAME}"]`);
  return meta?.content || null;
}

export function createWebBridge(doc: Document = document): PeernixBridge {
  const token = readPageToken(doc);
  const listeners = new Set<(c: ApiChange) => void>();
  let source: EventSource | null = null;
  let lostConnection = false;

  const emit = (c: ApiChange) => {
    for (const l of [...listeners]) l(c);
  };

  function connect(): void {
    source = new EventSource(CONTROL_API.changes);
    source.onmessage = (m: MessageEvent<string>) => {
      let change: ApiChange;
      try {
        change = JSON.parse(m.data) as ApiChange;
      } catch {
        return;
      }
      emit(change);
    };
    source.onerror = () => {
      // EventSource retries by itself; have the app refetch so it shows the outage (or recovery).
      lostConnection = true;
      emit({ topic: 'status' });
    };
    source.onopen = () => {
      if (!lostConnection) return;
      lostConnection = false;
      // Whatever changed while we were away: refetch everything.
      emit({ topic: 'status' });
    };
  }

  /** A change with the page's token; the JSON answer, or the server's reason as the error. */
  async function post(url: string, body: unknown): Promise<unknown> {
    if (!token) throw new Error('this page has no control token; reload it from Peernix');
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(await errorText(res));
    return res.json();
  }

  return {
    async snapshot(): Promise<Snapshot> {
      const res = await fetch(CONTROL_API.snapshot, { cache: 'no-store', credentials: 'same-origin' });
      if (!res.ok) throw new Error(await errorText(res));
      return (await res.json()) as Snapshot;
    },
    onChange(listener) {
      listeners.add(listener);
      if (!source) connect();
      return () => {
        listeners.delete(listener);
        if (!listeners.size && source) {
          source.close();
          source = null;
        }
      };
    },
    async setSharing(on) {
      if (!token) throw new Error('this page has no control token; reload it from Peernix');
      const res = await fetch(CONTROL_API.sharing, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ enabled: on }),
      });
      if (!res.ok) throw new Error(await errorText(res));
    },
    async network(action) {
      if (!token) throw new Error('this page has no control token; reload it from Peernix');
      const res = await fetch(CONTROL_API.network, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify(action),
      });
      if (!res.ok) throw new Error(await errorText(res));
      return (await res.json()) as NetworkStatusView;
    },
    async team(action) {
      return (await post(CONTROL_API.team, action)) as TeamView;
    },
    async noticeSeen(id) {
      await post(CONTROL_API.notice, { seen: id });
    },
    async copyText(text) {
      if (navigator.clipboard?.writeText) {
        try {
          await navigator.clipboard.writeText(text);
          return;
        } catch {
          // Permission denied or unfocused document: fall through to the selection route.
        }
      }
      copyWithSelection(doc, text);
    },
  };
}

async function errorText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: unknown };
    if (typeof body.error === 'string') return body.error;
  } catch {
    // not JSON
  }
  return `HTTP ${res.status}`;
}

function copyWithSelection(doc: Document, text: string): void {
  const area = doc.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  doc.body.appendChild(area);
  area.select();
  const ok = doc.execCommand('copy');
  area.remove();
  if (!ok) throw new Error('the browser refused to copy');
}
