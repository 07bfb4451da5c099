// Turns a failed start into a sentence a user can act on: a busy port names the process holding it,
// and when that process is a Peernix already running here, its dashboard is offered.
import { findPortHolder } from './port-holder.ts';
import { CONTROL_API } from '../src/control/contract.ts';

export interface StartFailure {
  message: string;
  /** The dashboard of another Peernix that holds our port, if one answered. */
  dashboardUrl: string | null;
}

export async function explainStartError(e: unknown, settingsPath: string | null): Promise<StartFailure> {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err?.code !== 'EADDRINUSE' || typeof err.port !== 'number') {
    return { message: err instanceof Error ? err.message : String(e), dashboardUrl: null };
  }
  const where = `${err.address?.includes(':') ? `[${err.address}]` : (err.address ?? '')}:${err.port}`;
  const holder = findPortHolder(err.port);
  const who = holder ? `process ${holder.pid} (${holder.command || 'unknown command'})` : null;
  // Is it a Peernix (`peernix serve`, a system service)? Its loopback listener answers our API.
  let dashboardUrl: string | null = null;
  const base = `http://127.0.0.1:${err.port}`;
  if (await answersAsPeernix(base)) dashboardUrl = `${base}/peernix/`;
  if (dashboardUrl) {
    return {
      message: `Peernix is already running on this machine${who ? ` as ${who}` : ''}: it holds ${where}. Its dashboard is ${dashboardUrl}; stop it or quit this app.`,
      dashboardUrl,
    };
  }
  return {
    message: `${where} is already in use by ${who ?? 'another program'}. Stop it, or choose another port ("listen"/"shareListen") in ${settingsPath ?? 'settings.json'}.`,
    dashboardUrl: null,
  };
}

/** A short look (loopback, 1.5 s): does the holder answer Peernix's snapshot route? */
async function answersAsPeernix(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}${CONTROL_API.snapshot}`, { redirect: 'error', signal: AbortSignal.timeout(1500) });
    const snap = JSON.parse(await res.text()) as { status?: { instanceId?: unknown; substituterUrl?: unknown } };
    return res.status === 200 && typeof snap.status?.instanceId === 'string' && typeof snap.status?.substituterUrl === 'string';
  } catch {
    return false;
  }
}
