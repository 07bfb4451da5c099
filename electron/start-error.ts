// Turns a failed start into a sentence a user can act on: a busy port names the process holding it,
// and when that process is a Peernix already running here, its dashboard is offered.
import { fetchSnapshot } from '../src/control/client.ts';
import { findPortHolder } from './port-holder.ts';

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
  try {
    const base = `http://127.0.0.1:${err.port}`;
    await fetchSnapshot(base);
    dashboardUrl = `${base}/peernix/`;
  } catch {}
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
