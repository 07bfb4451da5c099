// What scope checks cost on the narinfo hot path: two share listeners in this process over the same
// local backend and the same real route table and handlers, one with the scope policy (the asker
// classed from its connection, the path's verdict from the cache) and one without, asked in turns
// for the same public paths' narinfos over kept-alive plain connections, so both see the same moments
// of a busy machine. Every hit must be a 200 (and each team path a 404 from the scoped one). Then the
// scoped listener's 404s for team paths beside its 404s for absent ones: the same timing class.
//
//   node bench/scope.ts        (BENCH_RUNS, BENCH_SCOPE_PATHS to change the defaults)

import { createHash, randomBytes } from 'node:crypto';
import { createLogger } from '../src/base/log.ts';
import { askerClassifier } from '../src/cache/asker-class.ts';
import { createCacheHandlers } from '../src/cache/cache-handler.ts';
import { listen } from '../src/cache/http-listener.ts';
import { LocalBackend } from '../src/cache/local-backend.ts';
import { serveRoutes, type RouteHandler, type RoutePolicy } from '../src/cache/route-table.ts';
import { scopePolicy } from '../src/cache/scope-policy.ts';
import { shareRoutes } from '../src/cache/share-routes.ts';
import { formatSha256Nix32 } from '../src/nix/hash.ts';
import { encodeNix32 } from '../src/nix/nix32.ts';
import { generateKeyPair, parseSecretKey, signNarInfo } from '../src/nix/signing.ts';
import type { PathInfo } from '../src/store/daemon-connection.ts';
import { DEFAULT_EXCLUDE, PathScopes } from '../src/store/path-scope.ts';
import { makeTeamCertificate } from '../src/wire/team-certificate.ts';
import { latencyInTurns, median, percentile, row } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PATHS = Number(process.env.BENCH_SCOPE_PATHS ?? 2000);

async function main() {
  const log = createLogger('error');
  const publicCache = parseSecretKey(generateKeyPair('public-cache-1').secretKeyText);
  const ours = parseSecretKey(generateKeyPair('bench-peernix-1').secretKeyText);
  // A store of public paths (signed by the public cache) and as many team paths (unsigned).
  const infos = new Map<string, PathInfo>();
  const make = (signed: boolean): string => {
    const hashPart = encodeNix32(randomBytes(20));
    const narHash = createHash('sha256').update(hashPart).digest();
    const info: PathInfo = {
      path: `/nix/store/${hashPart}-tool-${infos.size}`,
      deriver: null,
      narHash,
      references: [],
      registrationTime: 0,
      narSize: 4096,
      ultimate: false,
      sigs: [],
      ca: null,
    };
    if (signed) info.sigs = [signNarInfo({ storePath: info.path, narHash: formatSha256Nix32(narHash), narSize: info.narSize, references: [] }, publicCache)];
    infos.set(hashPart, info);
    return hashPart;
  };
  const publicPaths = Array.from({ length: PATHS }, () => make(true));
  const teamPaths = Array.from({ length: PATHS }, () => make(false));
  const backend = new LocalBackend(
    {
      pathInfoFromDb: (h) => infos.get(h) ?? null,
      pathInfoByHashPart: async (h) => infos.get(h) ?? null,
      openNar: async () => 'missing',
    },
    ours,
  );
  const scopes = new PathScopes({ publicKeys: [publicCache.publicKey.text], exclude: DEFAULT_EXCLUDE });
  const cert = await makeTeamCertificate(ours);
  const unused: RouteHandler = (_req, res) => void res.end();
  const start = async (policy: RoutePolicy | undefined) => {
    const serve = serveRoutes(
      shareRoutes({
        cache: createCacheHandlers({ backend, log, priority: 30 }),
        identity: unused,
        summary: unused,
        reachBack: unused,
        realisation: unused,
        metrics: null,
      }),
      { log, last: true, policy },
    );
    return listen({ host: '127.0.0.1', port: 0, log, tls: cert, handler: (req, res) => void serve(req, res) });
  };
  const team = new Set<string>();
  const scoped = await start(scopePolicy({ classify: askerClassifier(() => team), scopes, narInfo: (h) => backend.narInfo(h) }));
  const unscoped = await start(undefined);
  try {
    // The scoped listener refuses team paths to an anonymous asker, and the unscoped one does not.
    const refused = teamPaths.slice(0, 20);
    await latencyInTurns([refused.map((h) => `${scoped.url}/${h}.narinfo`)], 404);
    await latencyInTurns([refused.map((h) => `${unscoped.url}/${h}.narinfo`)], 200);
    const urls = (base: string) => publicPaths.map((h) => `${base}/${h}.narinfo`);
    const p50: Record<'scoped' | 'unscoped', number[]> = { scoped: [], unscoped: [] };
    const p99: Record<'scoped' | 'unscoped', number[]> = { scoped: [], unscoped: [] };
    // A first pass warms both alike (verdicts, renderings, JIT); it is not counted.
    await latencyInTurns([urls(scoped.url), urls(unscoped.url)], 200);
    for (let i = 0; i < RUNS; i++) {
      const [s, u] = await latencyInTurns([urls(scoped.url), urls(unscoped.url)], 200);
      p50.scoped.push(percentile(s, 50));
      p50.unscoped.push(percentile(u, 50));
      p99.scoped.push(percentile(s, 99));
      p99.unscoped.push(percentile(u, 99));
    }
    console.log(`\nnarinfo hits of ${PATHS} public paths, in turns on two listeners, median of ${RUNS} runs (target: scoped p50 <= 1.1x)`);
    console.log(`${''.padEnd(34)} ${'scoped'.padStart(10)} ${'unscoped'.padStart(10)}`);
    console.log(row('narinfo hit p50', median(p50.scoped), median(p50.unscoped), 'ms', 3));
    console.log(row('narinfo hit p99', median(p99.scoped), median(p99.unscoped), 'ms', 3));

    // The same timing class: to an anonymous asker a team path's 404 costs what an absent path's does.
    const absentPaths = Array.from({ length: PATHS }, () => encodeNix32(randomBytes(20)));
    const notFound: Record<'team' | 'absent', number[][]> = { team: [[], []], absent: [[], []] };
    await latencyInTurns([teamPaths.map((h) => `${scoped.url}/${h}.narinfo`), absentPaths.map((h) => `${scoped.url}/${h}.narinfo`)], 404);
    for (let i = 0; i < RUNS; i++) {
      const [t, a] = await latencyInTurns([teamPaths.map((h) => `${scoped.url}/${h}.narinfo`), absentPaths.map((h) => `${scoped.url}/${h}.narinfo`)], 404);
      notFound.team[0].push(percentile(t, 50));
      notFound.absent[0].push(percentile(a, 50));
      notFound.team[1].push(percentile(t, 99));
      notFound.absent[1].push(percentile(a, 99));
    }
    console.log(`\n404s to an anonymous asker on the scoped listener, in turns, median of ${RUNS} runs (the same timing class)`);
    console.log(`${''.padEnd(34)} ${'team path'.padStart(10)} ${'absent'.padStart(10)}`);
    console.log(row('narinfo 404 p50', median(notFound.team[0]), median(notFound.absent[0]), 'ms', 3));
    console.log(row('narinfo 404 p99', median(notFound.team[1]), median(notFound.absent[1]), 'ms', 3));
    const c = scopes.counts();
    console.log(`verdicts: ${JSON.stringify(c.judged)}; refused: ${JSON.stringify(c.refused)}`);
  } finally {
    await scoped.close(0);
    await unscoped.close(0);
  }
}

await main();
