// Where an idle Peernix's wake-ups come from (#26), for `BENCH_IDLE_TRACE=<dir> node bench/idle-peers.ts`:
// preloaded into each node (NODE_OPTIONS=--require), it counts every callback the event loop runs by
// the kind of resource (Timeout, TCPWRAP, UDPWRAP, HTTPCLIENTREQUEST, …) and the source place that
// created it. The first SIGUSR2 starts the count, the second writes it to <dir>/<pid>.json. Debug
// only: a stack per resource costs far more than the node's idle work.
'use strict';
const { createHook } = require('node:async_hooks');
const { writeFileSync, readFileSync } = require('node:fs');

const dir = process.env.PEERNIX_WAKEUP_TRACE;
const sites = new Map(); // asyncId → site
let counts = null; // site key → wake-ups; null until the first SIGUSR2
let started = 0;
const bundles = new Map(); // bundle file → its lines, to name a line's source file (esbuild's "// src/x.ts")

function sourceOf(file, line) {
  let lines = bundles.get(file);
  if (!lines) {
    try {
      lines = readFileSync(file, 'utf8').split('\n');
    } catch {
      lines = [];
    }
    bundles.set(file, lines);
  }
  for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
    const m = /^\/\/ ((?:src|node_modules)\/\S+)/.exec(lines[i]);
    if (m) return m[1];
  }
  return file.replace(/.*\//, '');
}

function site() {
  const frames = [];
  for (const l of (new Error().stack ?? '').split('\n').slice(3)) {
    const m = /at (?:(\S+) \()?(?:file:\/\/)?(\/[^:]+):(\d+):\d+\)?$/.exec(l.trim());
    if (!m || m[2].includes('idle-wakeups') || m[2].includes('node:')) continue;
    const where = m[2].includes('/dist/') ? sourceOf(m[2], Number(m[3])) : m[2].replace(/.*node_modules\//, '');
    frames.push(`${m[1] ?? '?'}@${where}`);
    if (frames.length === 3) break;
  }
  return frames.join(' < ') || '(internal)';
}

if (dir) {
  Error.stackTraceLimit = 30;
  createHook({
    init(id, type) {
      sites.set(id, `${type} ${site()}`);
    },
    before(id) {
      if (!counts) return;
      const k = sites.get(id) ?? '(unknown)';
      counts.set(k, (counts.get(k) ?? 0) + 1);
    },
    destroy(id) {
      sites.delete(id);
    },
  }).enable();
  process.on('SIGUSR2', () => {
    if (!counts) {
      counts = new Map();
      started = performance.now();
      return;
    }
    const seconds = (performance.now() - started) / 1000;
    const rows = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => ({ perSecond: Math.round((n / seconds) * 1000) / 1000, site: k }));
    writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify({ seconds, rows }, null, 1));
    counts = new Map();
    started = performance.now();
  });
}
