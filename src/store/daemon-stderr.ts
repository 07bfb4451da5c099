// The daemon's stderr channel (nix-protocols.md §3.4): log lines, activities and results to skip,
// then LAST (a reply follows) or ERROR (none does). Every size is bounded: the daemon's output is
// read, never trusted to be small.

import { WireError, type WireReader } from './wire.ts';

const STDERR_NEXT = 0x6f6c6d67;
const STDERR_READ = 0x64617461;
const STDERR_WRITE = 0x64617416;
const STDERR_LAST = 0x616c7473;
const STDERR_ERROR = 0x63787470;
const STDERR_START_ACTIVITY = 0x53545254;
const STDERR_STOP_ACTIVITY = 0x53544f50;
const STDERR_RESULT = 0x52534c54;

export const MAX_MESSAGE = 1024 * 1024;
const MAX_TRACES = 1024;
const MAX_FIELDS = 1024;
const MAX_WRITE_FRAME = 64 * 1024 * 1024;

const minor = (v: number): number => v & 0xff;

// Terminal escapes appear in daemon error messages (it formats them for a TTY).
const ANSI_RE = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, '');
}

export class DaemonError extends Error {
  /** True when the connection the error came from is dead and must not be used again. */
  readonly fatal: boolean;
  /** ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT, EINVAL (rejected before sending), EPROTO, ... */
  readonly code: string | undefined;
  /** Extra context lines the daemon attached to the error (N >= 1.26). */
  readonly traces: string[];

  constructor(message: string, opts: { fatal: boolean; code?: string; cause?: unknown; traces?: string[] } = { fatal: false }) {
    super(stripAnsi(message).trim(), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DaemonError';
    this.fatal = opts.fatal;
    this.code = opts.code;
    this.traces = (opts.traces ?? []).map((t) => stripAnsi(t).trim());
  }
}

export type LogSink = (line: string) => void;

async function skipFields(r: WireReader): Promise<void> {
  const n = await r.u64();
  if (n > MAX_FIELDS) throw new WireError('OVERSIZE', `too many fields in log message: ${n}`);
  for (let i = 0; i < n; i++) {
    const type = await r.u64();
    if (type === 0) await r.u64();
    else if (type === 1) await r.skipStr(MAX_MESSAGE);
    else throw new WireError('PROTOCOL', `unknown log field type ${type}`);
  }
}

async function readError(r: WireReader, version: number): Promise<DaemonError> {
  if (minor(version) >= 26) {
    await r.skipStr(MAX_MESSAGE); // "Error"
    await r.u64(); // verbosity level
    await r.skipStr(MAX_MESSAGE); // obsolete name
    const message = await r.str(MAX_MESSAGE);
    if ((await r.u64()) !== 0) throw new WireError('PROTOCOL', 'error with a source position (unsupported)');
    const nTraces = await r.u64();
    if (nTraces > MAX_TRACES) throw new WireError('OVERSIZE', `too many error traces: ${nTraces}`);
    const traces: string[] = [];
    for (let i = 0; i < nTraces; i++) {
      if ((await r.u64()) !== 0) throw new WireError('PROTOCOL', 'error trace with a source position (unsupported)');
      traces.push(await r.str(MAX_MESSAGE));
    }
    return new DaemonError(message, { fatal: false, code: 'EDAEMON', traces });
  }
  const message = await r.str(MAX_MESSAGE);
  await r.u64(); // exit status
  return new DaemonError(message, { fatal: false, code: 'EDAEMON' });
}

/** Consume stderr messages up to LAST (returns null) or ERROR (returns the error). */
export async function readStderr(r: WireReader, version: number, onLog: LogSink | null): Promise<DaemonError | null> {
  for (;;) {
    const code = await r.u64();
    switch (code) {
      case STDERR_LAST:
        return null;
      case STDERR_ERROR:
        return readError(r, version);
      case STDERR_NEXT: {
        const line = await r.str(MAX_MESSAGE);
        onLog?.(stripAnsi(line).replace(/\n$/, ''));
        break;
      }
      case STDERR_START_ACTIVITY: {
        await r.u64(); // id
        await r.u64(); // level
        await r.u64(); // type
        const text = await r.str(MAX_MESSAGE);
        await skipFields(r);
        await r.u64(); // parent
        if (text) onLog?.(stripAnsi(text));
        break;
      }
      case STDERR_STOP_ACTIVITY:
        await r.u64();
        break;
      case STDERR_RESULT:
        await r.u64(); // id
        await r.u64(); // type
        await skipFields(r);
        break;
      case STDERR_WRITE:
        // Data for a client-side sink; no operation we issue uses one.
        await r.skipStr(MAX_WRITE_FRAME);
        break;
      case STDERR_READ:
        throw new WireError('PROTOCOL', 'daemon asked for input (STDERR_READ), which no operation we send expects');
      default:
        throw new WireError('PROTOCOL', `unknown stderr message 0x${code.toString(16)}`);
    }
  }
}
