import type { Writable } from 'node:stream';

// Exits once stdout and stderr have handed all their output to the OS. On POSIX a pipe is written
// asynchronously, so process.exit() right after a large write (`peernix status --json | jq`) cut
// the output at the pipe's 64 KiB with exit status 0.

/** Resolves when everything written to `stream` so far has been flushed (or the stream can take no more). */
export function flushed(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  // A write's callback runs once it and everything before it went out; an error (EPIPE: the reader
  // left) ends the wait just the same.
  return new Promise((resolve) => stream.write('', () => resolve()));
}

export async function exitAfterOutput(code: number, streams: Writable[] = [process.stdout, process.stderr]): Promise<never> {
  process.exitCode = code;
  await Promise.all(streams.map(flushed));
  process.exit(code);
}
