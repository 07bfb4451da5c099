import type { HttpListener } from '../cache/http-listener.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';

// The "share my store" switch: the LAN listener, its mDNS announcement, the saved choice and the
// events, kept in agreement. Every attempt stands on its own — one that failed (a busy port, a
// settings file that can't be written) leaves nothing half-done and does not poison the next one.
//
// Turning sharing on is all or nothing: if the choice can't be saved, the listener is closed again.
// Turning it off always takes effect — a store is never left shared against the user's wish because
// a file could not be written — and a failure to remember it is reported, not hidden.
//
// A pause (the network is not trusted) is a reason, not a choice: it closes the listener and
// withdraws the announcement without touching the saved choice, and lifting it shares again only if
// the user still wants to.

export interface SharingSwitchParts {
  /** Binds the share listener (rejects with e.g. EADDRINUSE). */
  bind(): Promise<HttpListener>;
  /**
   * What follows the listener (the Go peers' UDP responder): opened right after it, closed with it.
   * It is an extra: if it cannot open (its port taken by another program, or by a second Peernix on
   * this machine), sharing stays on and the failure is reported like any sharing error — shown in
   * `error` until sharing is switched again. Its errors should say what they are about. When it
   * opens, `listener` is already the new one.
   */
  companion?: { open(): Promise<void>; close(): Promise<void> };
  announce(port: number): void;
  unannounce(): Promise<void>;
  /** Saves the choice for the next start; may throw. */
  persist?: (on: boolean) => void;
  events: EventLog;
  log: Logger;
  /** Called whenever on/off, the listener or the error changed. */
  changed(): void;
}

export class SharingSwitch {
  private readonly parts: SharingSwitchParts;
  private current: HttpListener | null = null;
  private lastError: string | null = null;
  private companionError: string | null = null;
  // Switches run one at a time; the tail never rejects, so a failed one can't block the next.
  private tail: Promise<void> = Promise.resolve();
  private stopped = false;
  // The user's choice (saved), and why sharing is held off in spite of it.
  private wanted = false;
  private pausedBy: string | null = null;

  constructor(parts: SharingSwitchParts) {
    this.parts = parts;
  }

  get on(): boolean {
    return this.current !== null;
  }

  get listener(): HttpListener | null {
    return this.current;
  }

  /** Why sharing is held off though it may be wanted (an untrusted network); null when it isn't. */
  get paused(): string | null {
    return this.pausedBy;
  }

  /** Whether the user wants to share (the saved choice), paused or not. */
  get wantedOn(): boolean {
    return this.wanted;
  }

  /**
   * Why sharing is not in the state last asked for, why that choice was not saved, or what part of it
   * could not start; null when all is well.
   */
  get error(): string | null {
    return this.lastError ?? this.companionError;
  }

  /**
   * At start-up: share if the saved choice says so. A busy port doesn't stop Peernix; sharing stays off
   * for this run with a visible error, and the saved choice stays as the user left it.
   */
  startUp(wanted: boolean): Promise<void> {
    return this.queue(async () => {
      this.wanted = wanted;
      if (!wanted || this.pausedBy !== null) return;
      try {
        this.current = await this.parts.bind();
      } catch (e) {
        this.fail(`could not start sharing: ${describe(e)}; sharing is off for this run`);
        return;
      }
      await this.openCompanion();
      this.parts.log.info(`sharing this store on ${this.current.url}`);
      this.parts.announce(this.current.port);
      this.parts.changed();
    });
  }

  /** Turns sharing on or off; rejects with a message a user can act on. */
  set(on: boolean): Promise<void> {
    return this.queue(() => (on ? this.turnOn() : this.turnOff()));
  }

  /**
   * Holds sharing off for `reason` (null lifts it). Pausing always takes effect; lifting it shares
   * again if the user wants to, and a failure to bind is shown like any sharing error.
   */
  pause(reason: string | null): Promise<void> {
    return this.queue(async () => {
      const was = this.pausedBy;
      this.pausedBy = reason;
      if (reason !== null) {
        if (this.current) await this.close(reason);
        if (was !== reason) this.parts.changed();
        return;
      }
      if (was === null) return;
      this.parts.changed();
      if (!this.wanted || this.current || this.stopped) return;
      let listener: HttpListener;
      try {
        listener = await this.parts.bind();
      } catch (e) {
        this.fail(`could not start sharing: ${describe(e)}`);
        return;
      }
      await this.open(listener, 'sharing resumed');
    });
  }

  /** Closes the listener for good, letting transfers finish for `graceMs`. */
  stop(graceMs: number): Promise<void> {
    return this.queue(async () => {
      this.stopped = true;
      const l = this.current;
      this.current = null;
      if (l) await this.closeCompanion();
      await l?.close(graceMs);
    });
  }

  private async turnOn(): Promise<void> {
    if (this.stopped) throw new Error('Peernix is stopping');
    if (this.current) {
      this.clearError();
      return;
    }
    if (this.pausedBy !== null) {
      // Remembered, and shared as soon as the pause lifts.
      try {
        this.parts.persist?.(true);
      } catch (e) {
        throw this.fail(`could not turn sharing on: saving the setting failed (${describe(e)})`);
      }
      this.wanted = true;
      this.clearError();
      this.parts.changed();
      return;
    }
    let listener: HttpListener;
    try {
      listener = await this.parts.bind();
    } catch (e) {
      throw this.fail(`could not start sharing: ${describe(e)}`);
    }
    try {
      this.parts.persist?.(true);
    } catch (e) {
      await listener.close(0);
      throw this.fail(`could not turn sharing on: saving the setting failed (${describe(e)})`);
    }
    this.wanted = true;
    await this.open(listener, 'sharing turned on');
  }

  private async open(listener: HttpListener, what: string): Promise<void> {
    this.current = listener;
    this.lastError = null;
    await this.openCompanion();
    this.parts.announce(listener.port);
    this.parts.log.info(`${what}: ${listener.url}`);
    this.parts.events.emit({ type: 'sharing', enabled: true });
    this.parts.changed();
  }

  private async close(reason?: string): Promise<void> {
    const listener = this.current;
    if (!listener) return;
    // Goodbye first so peers stop asking, then refuse and cut what is in flight.
    await this.parts.unannounce();
    this.current = null;
    listener.cutAll();
    await this.closeCompanion();
    await listener.close(0);
    this.parts.log.info(reason ? `sharing paused: ${reason}` : 'sharing turned off');
    this.parts.events.emit(reason ? { type: 'sharing', enabled: false, reason } : { type: 'sharing', enabled: false });
    this.parts.changed();
  }

  private async turnOff(): Promise<void> {
    this.wanted = false;
    await this.close();
    try {
      this.parts.persist?.(false);
    } catch (e) {
      throw this.fail(`sharing is off, but the setting could not be saved (${describe(e)}); it may be on again after a restart`);
    }
    this.clearError();
  }

  private async openCompanion(): Promise<void> {
    const companion = this.parts.companion;
    if (!companion) return;
    try {
      await companion.open();
      this.companionError = null;
    } catch (e) {
      this.companionError = `sharing is on, but ${describe(e)}`;
      this.parts.log.warn(this.companionError);
      this.parts.events.emit({ type: 'error', message: this.companionError });
    }
    this.parts.changed();
  }

  private async closeCompanion(): Promise<void> {
    this.companionError = null;
    await this.parts.companion?.close();
  }

  private fail(message: string): Error {
    this.lastError = message;
    this.parts.log.warn(message);
    this.parts.events.emit({ type: 'error', message });
    this.parts.changed();
    return new Error(message);
  }

  private clearError(): void {
    if (this.lastError === null) return;
    this.lastError = null;
    this.parts.changed();
  }

  private queue(step: () => Promise<void>): Promise<void> {
    const attempt = this.tail.then(step);
    this.tail = attempt.catch(() => {});
    return attempt;
  }
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'EADDRINUSE') return `the share port is in use by another program (${err.message})`;
  if (err?.code === 'EACCES') return `not allowed to listen on the share port (${err.message})`;
  return err?.message ?? String(e);
}
