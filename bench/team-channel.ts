// What the team channel costs: one NAR-sized body streamed over loopback from a share listener that
// takes TLS and plain HTTP on one port, fetched by the peer client in plain and over the team channel
// (TLS 1.3 bound to both identity keys), side by side. Client and server run in this one process, so
// CPU ms per MB counts both ends of the transfer.
//
//   node bench/team-channel.ts        (BENCH_RUNS, BENCH_TEAM_MB to change the defaults)

import { createLogger } from '../src/base/log.ts';
import { listen } from '../src/cache/http-listener.ts';
import { generateKeyPair, parseSecretKey } from '../src/nix/signing.ts';
import { PeerClient } from '../src/peers/peer-client.ts';
import { makeTeamCertificate } from '../src/wire/team-certificate.ts';
import { median, row } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZE = Number(process.env.BENCH_TEAM_MB ?? 256) * 1024 * 1024;
const CHUNK = Buffer.alloc(256 * 1024, 7);

async function main() {
  const owner = parseSecretKey(generateKeyPair('owner-1').secretKeyText);
  const member = parseSecretKey(generateKeyPair('member-1').secretKeyText);
  const [ownerCert, memberCert] = await Promise.all([makeTeamCertificate(owner), makeTeamCertificate(member)]);
  const server = await listen({
    host: '127.0.0.1',
    port: 0,
    log: createLogger('error'),
    tls: ownerCert,
    handler: (_req, res) => {
      res.writeHead(200, { 'content-length': SIZE, 'content-type': 'application/x-nix-nar' });
      let left = SIZE;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, CHUNK.length);
          left -= n;
          if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
  });
  const ownerKey = owner.publicKey.key.toString('base64');
  const plain = new PeerClient({}, 'bench', {}, { frames: false });
  const team = new PeerClient({}, 'bench', {}, { frames: false, team: { cert: memberCert, keyOf: () => ownerKey } });
  const once = async (client: PeerClient) => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const body = await client.openNar(`${server.url}/nar/x.nar`, { offset: 0, expectedSize: SIZE });
    let got = 0;
    for await (const chunk of body) got += (chunk as Buffer).length;
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (got !== SIZE) throw new Error(`got ${got} of ${SIZE} bytes`);
    return { mibps: SIZE / 1048576 / (ms / 1000), cpuPerMB: (cpu.user + cpu.system) / 1000 / (SIZE / 1e6) };
  };
  try {
    const results: Record<'plain' | 'team', { mibps: number; cpuPerMB: number }[]> = { plain: [], team: [] };
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so drift on a shared machine hits both alike.
      results.plain.push(await once(plain));
      results.team.push(await once(team));
    }
    console.log(`\nNAR of ${SIZE / 1048576} MiB over loopback, median of ${RUNS} (CPU: client and server together)`);
    console.log(`${''.padEnd(34)} ${'team TLS'.padStart(10)} ${'plain'.padStart(10)}`);
    const m = (k: 'plain' | 'team', f: 'mibps' | 'cpuPerMB') => median(results[k].map((r) => r[f]));
    console.log(row('NAR throughput', m('team', 'mibps'), m('plain', 'mibps'), 'MiB/s', 0));
    console.log(row('CPU per MB', m('team', 'cpuPerMB'), m('plain', 'cpuPerMB'), 'ms', 2));
  } finally {
    plain.close();
    team.close();
    await server.close(0);
  }
}

await main();
