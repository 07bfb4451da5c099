import type { HttpListener } from './cache/http-listener.ts';
import type { EventLog } from './events.ts';
import type { Logger } from './log.ts';

// The "share my store" switch: the LAN listener, its mDNS announcement, the saved choice and the
// events, kept in agreement. Every attempt stands on its own — one that failed (a busy port, a
// settings file that can't be written) leaves nothing half-done and does not poison the next one.
//
// Turning sharing on is all or nothing: if the choice can't be saved, the listener is closed again.
// Turning it off always takes effect — a store is never left shared against the user's wish because
// a file could not be written — and a failure to remember it is reported, not hidden.

export interface SharingSwitchParts {
  /** Binds the share listener (rejects with e.g. EADDRINUSE). */
  bind(): Promise<HttpListener>;
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
  readonly #parts: SharingSwitchParts;
  #listener: HttpListener | null = null;
  #error: string | null = null;
  // Switches run one at a time; the tail never rejects, so a failed one can't block the next.
  #tail: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(parts: SharingSwitchParts) {
    this.#parts = parts;
  }

  get on(): boolean {
    return this.#listener !== null;
  }

  get listener(): HttpListener | null {
    return this.#listener;
  }

  /** Why sharing is not in the state last asked for, or why that choice was not saved; null when all is well. */
  get error(): string | null {
    return this.#error;
  }

  /**
   * At start-up: share if the saved choice says so. A busy port doesn't stop Peernix; sharing stays off
   * for this run with a visible error, and the saved choice stays as the user left it.
   */
  startUp(wanted: boolean): Promise<void> {
    return this.#queue(async () => {
      if (!wanted) return;
      try {
        this.#listener = await this.#parts.bind();
      } catch (e) {
        this.#fail(`could not start sharing: ${describe(e)}; sharing is off for this run`);
        return;
      }
      this.#parts.log.info(`sharing this store on ${this.#listener.url}`);
      this.#parts.announce(this.#listener.port);
      this.#parts.changed();
    });
  }

  /** Turns sharing on or off; rejects with a message a user can act on. */
  set(on: boolean): Promise<void> {
    return this.#queue(() => (on ? this.#turnOn() : this.#turnOff()));
  }

  /** Closes the listener for good, letting transfers finish for `graceMs`. */
  stop(graceMs: number): Promise<void> {
    return this.#queue(async () => {
      this.#stopped = true;
      const l = this.#listener;
      this.#listener = null;
      await l?.close(graceMs);
    });
  }

  async #turnOn(): Promise<void> {
    if (this.#stopped) throw new Error('Peernix is stopping');
    if (this.#listener) {
      this.#clearError();
      return;
    }
    let listener: HttpListener;
    try {
      listener = await this.#parts.bind();
    } catch (e) {
      throw this.#fail(`could not start sharing: ${describe(e)}`);
    }
    try {
      this.#parts.persist?.(true);
    } catch (e) {
      await listener.close(0);
      throw this.#fail(`could not turn sharing on: saving the setting failed (${describe(e)})`);
    }
    this.#listener = listener;
    this.#parts.announce(listener.port);
    this.#error = null;
    this.#parts.log.info(`sharing turned on: ${listener.url}`);
    this.#parts.events.emit({ type: 'sharing', enabled: true });
    this.#parts.changed();
  }

  async #turnOff(): Promise<void> {
    const listener = this.#listener;
    if (listener) {
      // Goodbye first so peers stop asking, then refuse and cut what is in flight.
      await this.#parts.unannounce();
      this.#listener = null;
      listener.cutAll();
      await listener.close(0);
      this.#parts.log.info('sharing turned off');
      this.#parts.events.emit({ type: 'sharing', enabled: false });
    }
    try {
      this.#parts.persist?.(false);
    } catch (e) {
      throw this.#fail(`sharing is off, but the setting could not be saved (${describe(e)}); it may be on again after a restart`);
    }
    this.#clearError();
  }

  #fail(message: string): Error {
    this.#error = message;
    this.#parts.log.warn(message);
    this.#parts.events.emit({ type: 'error', message });
    this.#parts.changed();
    return new Error(message);
  }

  #clearError(): void {
    if (this.#error === null) return;
    this.#error = null;
    this.#parts.changed();
  }

  #queue(step: () => Promise<void>): Promise<void> {
    const attempt = this.#tail.then(step);
    this.#tail = attempt.catch(() => {});
    return attempt;
  }
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'EADDRINUSE') return `the share port is in use by another program (${err.message})`;
  if (err?.code === 'EACCES') return `not allowed to listen on the share port (${err.message})`;
  return err?.message ?? String(e);
}
