// Small inline SVG charts, built with DOM calls (no markup strings, no library). Each chart is an
// image with a text alternative (aria-label and <title>) that says what it shows in numbers, so a
// screen reader reads the figures rather than nothing.

const NS = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS(NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

function labelled(width: number, height: number, label: string, cls: string, testid?: string): SVGElement {
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: cls, preserveAspectRatio: 'none' });
  if (testid) root.setAttribute('data-testid', testid);
  root.append(svg('title', {}, label));
  return root;
}

/**
 * A line of recent values, newest at the right; nulls (no answer) break the line. `slots` is how
 * many values a full history has: a young one fills only the right part, at the same scale.
 */
export function sparkline(
  values: (number | null)[],
  label: string,
  opts: { width?: number; height?: number; cls?: string; testid?: string; slots?: number } = {},
): SVGElement {
  const w = opts.width ?? 72;
  const hgt = opts.height ?? 18;
  const root = labelled(w, hgt, label, `spark ${opts.cls ?? ''}`.trim(), opts.testid);
  const nums = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (values.length < 2 || nums.length === 0) return root;
  const max = Math.max(...nums) || 1;
  const slots = Math.max(values.length, opts.slots ?? values.length);
  const step = w / (slots - 1);
  const first = slots - values.length;
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const x = ((first + i) * step).toFixed(1);
    const y = (hgt - 1 - (v / max) * (hgt - 2)).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x} ${y} `;
    pen = true;
  });
  root.append(svg('path', { d: d.trim(), class: 'spark-line' }));
  return root;
}

/** Paired bars per slot: in (up from the middle line) and out (down from it). */
export function flowChart(inBytes: number[], outBytes: number[], label: string, opts: { width?: number; height?: number; testid?: string } = {}): SVGElement {
  const w = opts.width ?? 360;
  const hgt = opts.height ?? 64;
  const root = labelled(w, hgt, label, 'flow', opts.testid);
  const n = Math.max(inBytes.length, outBytes.length, 1);
  const max = Math.max(1, ...inBytes, ...outBytes);
  const mid = hgt / 2;
  const slot = w / n;
  const bar = Math.max(1, slot - 1);
  for (let i = 0; i < n; i++) {
    const a = inBytes[i] ?? 0;
    const b = outBytes[i] ?? 0;
    if (a > 0) {
      const hh = Math.max(1, (a / max) * (mid - 1));
      root.append(svg('rect', { x: (i * slot).toFixed(1), y: (mid - hh).toFixed(1), width: bar.toFixed(1), height: hh.toFixed(1), class: 'flow-in' }));
    }
    if (b > 0) {
      const hh = Math.max(1, (b / max) * (mid - 1));
      root.append(svg('rect', { x: (i * slot).toFixed(1), y: mid.toFixed(1), width: bar.toFixed(1), height: hh.toFixed(1), class: 'flow-out' }));
    }
  }
  root.append(svg('line', { x1: 0, x2: w, y1: mid, y2: mid, class: 'flow-axis' }));
  return root;
}
