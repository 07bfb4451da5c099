import { Transform, type Readable } from 'node:stream';

// A resume from a holder that ignores Range: HTTP lets a server answer a Range request with 200 and
// the whole body, and the Go peernix always does. NARs are deterministic, so the bytes before the
// offset reached are the ones already sent; they are read and dropped here, and what follows is the
// rest of the NAR (still hashed with the rest by the resolver, so a holder with other bytes is caught).

/** The source's bytes after the first `n`; fails with `cut(...)` if the source ends or dies first. */
export function skipPrefix(source: Readable, n: number, cut: (why: string) => Error): Readable {
  let left = n;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return cb();
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      cb(null, rest);
    },
    flush(cb) {
      cb(left > 0 ? cut(`ended ${left} bytes before the resume offset`) : null);
    },
  });
  source.once('error', (e) => out.destroy(e));
  // A source closed without its end (a cut connection) must end this one too, as an error.
  source.once('close', () => {
    if (!source.readableEnded && !out.destroyed) out.destroy(cut('connection closed mid-NAR'));
  });
  out.once('close', () => {
    if (!source.destroyed) source.destroy();
  });
  source.pipe(out);
  return out;
}
