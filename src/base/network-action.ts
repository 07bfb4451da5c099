import type { NetworkAction } from './api.ts';

// Checks a request to trust, forget or dismiss a network, as it arrives from outside the core (the
// control API's JSON body, the window's IPC): exactly one verb, with a bounded string.

export function parseNetworkAction(v: unknown): NetworkAction | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const entries = Object.entries(v);
  if (entries.length !== 1) return null;
  const [verb, id] = entries[0];
  if ((verb !== 'trust' && verb !== 'forget' && verb !== 'dismiss') || typeof id !== 'string' || id.length === 0 || id.length > 200) return null;
  return { [verb]: id } as NetworkAction;
}
