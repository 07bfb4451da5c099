import type { DnsSdStatusView } from './api.ts';

// The DNS-SD registration in words, the same in `peernix status`, the doctor and the window. Imports
// nothing but types, so the renderer's bundle can use it.

export type RegistrationView = NonNullable<DnsSdStatusView['registration']>;

/** Registered or not, where, and the server's words when it refused. */
export function describeRegistration(r: RegistrationView): string {
  const where = `${r.instance || r.domain} with ${r.server}`;
  switch (r.state) {
    case 'registered':
      return `registered as ${where}${r.addresses.length ? ` (${r.addresses.join(' ')})` : ''}`;
    case 'refused':
      return `refused in ${r.domain}: ${r.detail ?? 'the server said no'}`;
    case 'unreachable':
      return `not registered in ${r.domain}: ${r.detail ?? 'the server did not answer'}; retrying`;
    case 'registering':
      return `registering in ${r.domain} with ${r.server}…`;
    default:
      return `not registered now (${r.state}) in ${r.domain}: registration runs while sharing`;
  }
}

/** The update lease (RFC 9664): granted (the server removes a vanished host's records) or not. */
export function describeLease(r: RegistrationView): string {
  if (r.state !== 'registered') return `update lease: asks for ${r.leaseRequested} s`;
  return r.leaseGranted !== null
    ? `update lease granted: ${r.leaseGranted} s (asked ${r.leaseRequested} s), refreshed before it runs out; the server removes the records if this machine vanishes`
    : 'update lease not granted (the server ignores the option): the records stay until the next start replaces them, and peers judge a vanished host by health';
}
