// bench:transfers, part "several holders" (issue #24 §2): the Python library's NAR (about 53 MB)
// held by B, C and D, each sending through a link shaped to 100 Mbit/s, fetched with curl through
// A's substituter (which verifies SHA-256). Columns, in turns:
//   one holder      an A that knows only B (the reference: what a NAR from one peer takes)
//   three holders   an A that knows B, C and D: pieces by Range from all three
// each raw (A with --no-peer-compression: the link alone sets the pace) and compressed (the default;
// here the three holders compress on the same two cores that A decodes and hashes on).
import { createLan, type Lan, type LanHost } from '../test/support/netns.ts';
import { makeSigningKey, type NixHost, startNixHost } from '../test/support/nix-host.ts';
import { BUILT_MAIN, type PeernixProcess, startPeernixProcess } from '../test/support/peernix-process.ts';
import { median } from './lib.ts';
import { cpuSeconds, type Figures, holderArgs, shapeLink } from './transfers-one-nar.ts';

const MB = 1e6;

export async function swarm(dir: string, figs: Figures, runs: number, hosts: NixHost[], started: PeernixProcess[], keepLan: (l: Lan) => void): Promise<void> {
  const stores: NixHost[] = [];
  for (const n of ['a', 'b', 'c', 'd']) stores.push(await startNixHost(`${dir}/sw-${n}`));
  hosts.push(...stores);
  const keys = [];
  process.stderr.write('several holders: the Python library on B, C and D…\n');
  let py = '';
  for (const [i, s] of stores.slice(1).entries()) {
    keys.push(await makeSigningKey(s, `${dir}/sw-${'bcd'[i]}`, `bench-sw-${'bcd'[i]}-1`));
    py = (await s.nixStore(['--add', '/usr/lib/python3.11'], { check: true })).stdout.trim();
  }
  const senders: PeernixProcess[] = [];
  const lan = await createLan(4);
  keepLan(lan);
  const [A, ...holders] = lan.hosts;
  const inNs =
    (h: LanHost) =>
    (cmd: string, args: string[]): [string, string[]] => ['ip', ['netns', 'exec', h.ns, cmd, ...args]];
  for (const [i, h] of holders.entries()) {
    await shapeLink(h, '100mbit');
    const p = await startPeernixProcess(holderArgs(stores[i + 1].storeUri, keys[i].secretKeyFile, `${dir}/sw-${'bcd'[i]}-state`), {
      main: BUILT_MAIN,
      wrap: inNs(h),
    });
    started.push(p);
    senders.push(p);
  }
  const peers = (n: number) => holders.slice(0, n).flatMap((h) => ['--peer', `http://${h.address}:9999`]);
  const ways: { col: string; port: number; n: number; raw: boolean }[] = [
    { col: 'one holder, raw', port: 9990, n: 1, raw: true },
    { col: 'three holders, raw', port: 9991, n: 3, raw: true },
    { col: 'one holder, compressed', port: 9992, n: 1, raw: false },
    { col: 'three holders, compressed', port: 9993, n: 3, raw: false },
  ];
  const as = new Map<string, PeernixProcess>();
  for (const w of ways) {
    const a = await startPeernixProcess(
      [
        ...peers(w.n),
        '--no-share',
        '--no-mdns',
        '--store',
        stores[0].storeUri,
        '--listen',
        `127.0.0.1:${w.port}`,
        '--state-dir',
        `${dir}/sw-a-${w.port}`,
        ...(w.raw ? ['--no-peer-compression'] : []),
      ],
      { main: BUILT_MAIN, wrap: inNs(A) },
    );
    started.push(a);
    as.set(w.col, a);
    for (let i = 0; ; i++) {
      const r = await A.run('curl', ['-sf', `http://127.0.0.1:${w.port}/peernix/api/snapshot`, '-H', `host: 127.0.0.1:${w.port}`]);
      if (r.code === 0 && (r.stdout.match(/"state":"up"/g) ?? []).length >= w.n) break;
      if (i > 200) throw new Error(`A on ${w.port} never saw its ${w.n} holders`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const fetchNar = async (port: number): Promise<number> => {
    const info = await A.run('curl', ['-sf', `http://127.0.0.1:${port}/${py.slice(11, 43)}.narinfo`]);
    if (info.code !== 0) throw new Error(`narinfo through A:${port}: curl exit ${info.code}`);
    const url = /^URL: (.*)$/m.exec(info.stdout)![1];
    const r = await A.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', `http://127.0.0.1:${port}/${url}`], { timeoutMs: 300_000 });
    const [status, seconds] = r.stdout.trim().split(' ');
    if (status !== '200') throw new Error(`NAR through A:${port}: HTTP ${status} (curl exit ${r.code})`);
    return Number(seconds);
  };
  const metric = 'one Python library NAR, holders at 100mbit each';
  // Each A once before the timed runs: the holders' compression plans and A's link figures settle.
  for (const w of ways) await fetchNar(w.port);
  let size = 0;
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < ways.length; i++) {
      const w = ways[(i + r) % ways.length];
      const a = as.get(w.col)!;
      const c0 = cpuSeconds(a.proc.pid!);
      const h0 = senders.reduce((n, p) => n + cpuSeconds(p.proc.pid!), 0);
      const s = await fetchNar(w.port);
      const m = /NarSize: (\d+)/.exec((await A.run('curl', ['-sf', `http://127.0.0.1:${w.port}/${py.slice(11, 43)}.narinfo`])).stdout);
      size = Number(m?.[1] ?? size);
      figs.add(`${metric}: fetch through A`, w.col, s, 's');
      figs.add(`${metric}: A's CPU per MB`, w.col, ((cpuSeconds(a.proc.pid!) - c0) * 1000) / (size / MB), 'ms/MB');
      // The holders' CPU together: on this machine they share A's two cores.
      const h1 = senders.reduce((n, p) => n + cpuSeconds(p.proc.pid!), 0);
      figs.add(`${metric}: the holders' CPU per MB`, w.col, ((h1 - h0) * 1000) / (size / MB), 'ms/MB');
    }
  }
  const t = (col: string) => median(figs.values(`${metric}: fetch through A`, col));
  figs.add(`${metric}: speed-up`, 'three vs one holder, raw', t('one holder, raw') / t('three holders, raw'), 'x');
  figs.add(`${metric}: speed-up`, 'three vs one holder, compressed', t('one holder, compressed') / t('three holders, compressed'), 'x');
  const split = [...as.values()].flatMap((a) => a.logs().match(/from \d holders at once: [^\n]*/g) ?? []);
  process.stderr.write(`splits logged by the A's: ${split.length}; last: ${split.at(-1) ?? 'none'}\n`);
}
