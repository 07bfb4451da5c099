import { run } from './run.ts';

/** `promtool check metrics` on an exposition text (Debian's prometheus package): its exit code and complaints. */
export async function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  const r = await run('/usr/bin/promtool', ['check', 'metrics'], { input: text, timeoutMs: 30_000, baseEnv: process.env });
  return { code: r.code, output: (r.stdout + r.stderr).trim() };
}

/** The value of one sample, e.g. sample(text, 'peernix_answers_total', { route: 'nar', source: 'peer' }); 0 when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[4]);
      found = true;
    }
  }
  return found ? total : 0;
}

/** How many series of a metric the text carries. */
export function seriesCount(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' ')).length;
}
