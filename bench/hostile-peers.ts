// Benchmark for hostile NAR peers (issue 26): what one NAR fetch costs a Peernix when the peer
// serving it is genuine, and when it is hostile with the same signed narinfo.
//
//   node bench/hostile-peers.ts
//
// A Peernix ("A", empty store) fetches one path of SIZE bytes through its substituter listener, read
// by curl as fast as it goes, from one static peer on loopback:
//   - genuine:   a Peernix serving the path from its store (frames, as between Peernix peers);
//   - bomb:      test/fixtures/frame-bomb-peer.ts: a NAR head, then zstd frames of 4 MiB of zeros;
//   - 1-byte:    the same, raw frames of one byte;
//   - tiny zstd: the same, zstd frames of 64 bytes;
//   - summary flood: the genuine peer, and ten identities of one host (test/fixtures/summary-flood-peer.ts)
//     answering every summary poll with a new 4 MiB summary.
// The hostile narinfos are signed by a key A trusts (a replayed public narinfo is as good). A is a
// fresh process per case. Prints, side by side: A's CPU seconds from its peers being up (then
// FLOOD_S seconds of waiting, when only summaries are polled) to the end of the fetch, its peak
// RSS, the NAR bytes the client got, and how the fetch ended. Medians of RUNS runs.
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { encodeNix32 } from '../src/nix/nix32.ts';
import { parseSecretKey, signNarInfo } from '../src/nix/signing.ts';
import { addPath, cleanup, makeSigningKey, makeTempDir, startNixHost } from '../test/support/nix-host.ts';
import { startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';
import { run } from '../test/support/run.ts';
import { waitFor } from '../test/support/wait.ts';
import { median, peakRssMiB } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZE = Number(process.env.BENCH_NAR_MIB ?? 128) * 1024 * 1024;
const HOSTILE_PORT = 19_871;
const FLOOD_PORT = 19_900;
const FLOOD_IDENTITIES = 10;
const FLOOD_S = Number(process.env.BENCH_FLOOD_S ?? 10);

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main() {
  const dir = await makeTempDir('pn-bhostile');
  const started: PeernixProcess[] = [];
  let hostile: ChildProcess | null = null;
  let flood: ChildProcess | null = null;
  try {
    const a = await startNixHost(`${dir}/a`);
    const b = await startNixHost(`${dir}/b`);
    const bKey = await makeSigningKey(b, `${dir}/b`, 'genuine-1');
    const upstream = await makeSigningKey(a, `${dir}/a`, 'upstream-1');
    const genuinePath = await addPath(b, 'genuine', { type: 'file', size: SIZE, seed: 'genuine' });
    const narSize = (await b.pathInfoJson([genuinePath]))[0].narSize;
    const genuine = await startPeernixProcess([
      '--store',
      b.storeUri,
      '--listen',
      '127.0.0.1:0',
      '--share-listen',
      '127.0.0.1:0',
      '--state-dir',
      `${dir}/b-state`,
      '--no-mdns',
      '--secret-key-file',
      bKey.secretKeyFile,
    ]);
    started.push(genuine);

    // The hostile peer's narinfos: the same size as the genuine NAR, hashes no NAR has.
    const infoDir = `${dir}/hostile`;
    mkdirSync(infoDir);
    const key = parseSecretKey(readFileSync(upstream.secretKeyFile, 'utf8').trim());
    const hostilePaths: Record<string, string> = {};
    for (const kind of ['bomb', 'tinyraw', 'tinyzstd']) {
      const hash = encodeNix32(randomBytes(20));
      const storePath = `/nix/store/${hash}-${kind}`;
      const narHash = `sha256:${encodeNix32(randomBytes(32))}`;
      const sig = signNarInfo({ storePath, narHash, narSize, references: [] }, key);
      writeFileSync(
        `${infoDir}/${hash}.narinfo`,
        [
          `StorePath: ${storePath}`,
          `URL: nar/${kind}-${hash}.nar`,
          'Compression: none',
          `NarHash: ${narHash}`,
          `NarSize: ${narSize}`,
          'References: ',
          `Sig: ${sig}`,
          '',
        ].join('\n'),
      );
      hostilePaths[kind] = storePath;
    }
    hostile = spawn(process.execPath, [new URL('../test/fixtures/frame-bomb-peer.ts', import.meta.url).pathname, infoDir, '127.0.0.1', String(HOSTILE_PORT)], {
      stdio: 'ignore',
    });

    // Another loopback address: to A it is one LAN host, not a process on its own machine.
    flood = spawn(
      process.execPath,
      [new URL('../test/fixtures/summary-flood-peer.ts', import.meta.url).pathname, '127.0.0.2', String(FLOOD_PORT), String(FLOOD_IDENTITIES)],
      { stdio: 'ignore' },
    );
    const floodPeers = Array.from({ length: FLOOD_IDENTITIES }, (_, i) => ['--peer', `http://127.0.0.2:${FLOOD_PORT + i}`]).flat();

    const cases: [string, string[], string][] = [
      ['genuine', ['--peer', genuine.shareUrl!], genuinePath],
      ['bomb', ['--peer', `http://127.0.0.1:${HOSTILE_PORT}`], hostilePaths.bomb],
      ['1-byte frames', ['--peer', `http://127.0.0.1:${HOSTILE_PORT}`], hostilePaths.tinyraw],
      ['tiny zstd frames', ['--peer', `http://127.0.0.1:${HOSTILE_PORT}`], hostilePaths.tinyzstd],
      ['summary flood', ['--peer', genuine.shareUrl!, ...floodPeers], genuinePath],
    ];
    const results: Record<string, { cpu: number[]; rss: number[]; bytes: number[]; ends: string[] }> = {};
    for (let i = 0; i < RUNS; i++) {
      for (const [name, peers, storePath] of cases) {
        const pn = await startPeernixProcess(
          [
            '--store',
            a.storeUri,
            '--listen',
            '127.0.0.1:0',
            '--no-share',
            '--state-dir',
            `${dir}/a-state-${name.replace(/\W/g, '')}-${i}`,
            '--no-mdns',
            ...peers,
          ],
          {
            env: { MALLOC_MMAP_THRESHOLD_: '131072', NIX_CONFIG: `trusted-public-keys = ${bKey.publicKey} ${upstream.publicKey}\nrequire-sigs = true` },
          },
        );
        started.push(pn);
        await waitFor(
          'the peers up',
          async () => {
            const r = await run('curl', ['-s', `${pn.substituterUrl}/peernix/api/snapshot`]);
            return (r.stdout.match(/"state":\s*"up"/g) ?? []).length >= peers.length / 2;
          },
          20_000,
        );
        const cpu0 = cpuSeconds(pn.proc.pid!);
        await new Promise((r) => setTimeout(r, FLOOD_S * 1000));
        const info = await run('curl', ['-s', `${pn.substituterUrl}/${storePath.slice(11, 43)}.narinfo`]);
        const url = /^URL: (.*)$/m.exec(info.stdout)?.[1];
        const got = url
          ? await run('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download} %{http_code} %{exitcode}', '--max-time', '120', `${pn.substituterUrl}/${url}`])
          : { stdout: '0 000 -' };
        const [bytes, code, exit] = got.stdout.trim().split(' ');
        const r = (results[name] ??= { cpu: [], rss: [], bytes: [], ends: [] });
        r.cpu.push(cpuSeconds(pn.proc.pid!) - cpu0);
        r.rss.push(peakRssMiB(pn.proc.pid!));
        r.bytes.push(Number(bytes));
        r.ends.push(exit === '0' ? `HTTP ${code}, whole` : `HTTP ${code}, cut (curl ${exit})`);
        await pn.stop();
        started.splice(started.indexOf(pn), 1);
      }
    }
    console.log(
      `One NAR of ${(narSize / 1048576).toFixed(0)} MiB fetched through a fresh Peernix after ${FLOOD_S} s with its peers up; medians of ${RUNS} runs`,
    );
    console.log(
      `${'peer'.padEnd(18)} ${'CPU s'.padStart(8)} ${'× genuine'.padStart(10)} ${'peak RSS MiB'.padStart(13)} ${'NAR bytes to client'.padStart(20)}  ending`,
    );
    const base = median(results.genuine.cpu);
    for (const [name] of cases) {
      const r = results[name];
      console.log(
        `${name.padEnd(18)} ${median(r.cpu).toFixed(2).padStart(8)} ${(median(r.cpu) / base).toFixed(2).padStart(10)} ${median(r.rss).toFixed(0).padStart(13)} ${String(median(r.bytes)).padStart(20)}  ${r.ends[0]}`,
      );
    }
  } finally {
    hostile?.kill('SIGKILL');
    flood?.kill('SIGKILL');
    for (const p of started) await p.stop().catch(() => {});
    await cleanup(dir);
  }
}

await main();
