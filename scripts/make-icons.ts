// Draws Peernix's tray and app icons and writes them as PNGs into assets/. Run it again after
// changing the drawing: `npx node scripts/make-icons.ts`. The PNGs are committed; nothing at
// runtime depends on this script.
//
// The glyph is a hexagon (the shape of a store, and a nod to Nix's snowflake) whose centre is wired
// to three of its corners: a small network of peers. States:
//   sharing — the connected graph; idle — the corners without the wiring; error — a "!".
// macOS template images are black + alpha (the menu bar recolours them); the colour icons are for
// Linux and Windows trays, which show them as they are.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

type RGBA = [number, number, number, number];
type Shape = (x: number, y: number) => boolean;
interface Layer {
  shape: Shape;
  paint: RGBA | ((x: number, y: number) => RGBA) | 'erase';
}

const OUT = path.join(import.meta.dirname, '..', 'assets');

// ---- geometry (unit space: centre 0,0; ±1 is the image edge; y grows downwards) --------------

function hexVertices(r: number): [number, number][] {
  return Array.from({ length: 6 }, (_, i) => {
    const a = ((-90 + 60 * i) * Math.PI) / 180;
    return [r * Math.cos(a), r * Math.sin(a)];
  });
}

function segDist(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - ax - t * dx, py - ay - t * dy);
}

function insidePolygon(x: number, y: number, pts: [number, number][]): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function polygonEdgeDist(x: number, y: number, pts: [number, number][]): number {
  let d = Infinity;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    d = Math.min(d, segDist(x, y, pts[j][0], pts[j][1], pts[i][0], pts[i][1]));
  }
  return d;
}

const hexFill = (r: number): Shape => {
  const v = hexVertices(r);
  return (x, y) => insidePolygon(x, y, v);
};
const hexStroke = (r: number, w: number): Shape => {
  const v = hexVertices(r);
  return (x, y) => polygonEdgeDist(x, y, v) <= w / 2;
};
const disc =
  (cx: number, cy: number, r: number): Shape =>
  (x, y) =>
    Math.hypot(x - cx, y - cy) <= r;
const line =
  (ax: number, ay: number, bx: number, by: number, w: number): Shape =>
  (x, y) =>
    segDist(x, y, ax, ay, bx, by) <= w / 2;
const union =
  (...shapes: Shape[]): Shape =>
  (x, y) =>
    shapes.some((s) => s(x, y));
const roundedSquare =
  (half: number, radius: number): Shape =>
  (x, y) => {
    const qx = Math.max(Math.abs(x) - (half - radius), 0);
    const qy = Math.max(Math.abs(y) - (half - radius), 0);
    return Math.hypot(qx, qy) <= radius;
  };

/** The network: three corners (top, lower right, lower left) and the centre. */
function graph(r: number, stroke: number, node: number, wired: boolean, centre: boolean): Shape {
  const v = hexVertices(r);
  const corners = [v[0], v[2], v[4]];
  const parts: Shape[] = corners.map(([x, y]) => disc(x, y, node));
  if (centre) parts.push(disc(0, 0, node * 1.1));
  if (wired) for (const [x, y] of corners) parts.push(line(0, 0, x, y, stroke));
  return union(...parts);
}

function exclamation(scale: number, width: number): Shape {
  return union(line(0, -0.48 * scale, 0, 0.1 * scale, width), disc(0, 0.4 * scale, width * 0.62));
}

// ---- raster + PNG -------------------------------------------------------------------------------

function render(size: number, layers: Layer[], samples = 5): Buffer {
  const px = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let pxI = 0; pxI < size; pxI++) {
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const x = ((pxI + (sx + 0.5) / samples) / size) * 2 - 1;
          const y = ((py + (sy + 0.5) / samples) / size) * 2 - 1;
          // Premultiplied "over" of each layer, per sample.
          let cr = 0;
          let cg = 0;
          let cb = 0;
          let ca = 0;
          for (const layer of layers) {
            if (!layer.shape(x, y)) continue;
            if (layer.paint === 'erase') {
              cr = cg = cb = ca = 0;
              continue;
            }
            const [lr, lg, lb, la] = typeof layer.paint === 'function' ? layer.paint(x, y) : layer.paint;
            cr = lr * la + cr * (1 - la);
            cg = lg * la + cg * (1 - la);
            cb = lb * la + cb * (1 - la);
            ca = la + ca * (1 - la);
          }
          r += cr;
          g += cg;
          b += cb;
          a += ca;
        }
      }
      const n = samples * samples;
      const i = (py * size + pxI) * 4;
      const alpha = a / n;
      px[i] = alpha ? Math.round(r / n / alpha) : 0;
      px[i + 1] = alpha ? Math.round(g / n / alpha) : 0;
      px[i + 2] = alpha ? Math.round(b / n / alpha) : 0;
      px[i + 3] = Math.round(alpha * 255);
    }
  }
  return png(size, size, px);
}

function png(width: number, height: number, rgba: Buffer): Buffer {
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

// ---- the icons ---------------------------------------------------------------------------------

type State = 'sharing' | 'idle' | 'error';

const BLACK: RGBA = [0, 0, 0, 1];
const WHITE: RGBA = [255, 255, 255, 1];
const COLOURS: Record<State, RGBA> = {
  sharing: [47, 111, 222, 1], // blue
  idle: [125, 135, 152, 1], // slate
  error: [217, 45, 32, 1], // red
};

/** Menu-bar glyph: black on transparent, drawn to stay crisp at 16 px. */
function templateLayers(state: State): Layer[] {
  const R = 0.86;
  const layers: Layer[] = [{ shape: hexStroke(R, 0.17), paint: BLACK }];
  if (state === 'error') layers.push({ shape: exclamation(1, 0.2), paint: BLACK });
  else layers.push({ shape: graph(R, 0.15, state === 'sharing' ? 0.22 : 0.2, state === 'sharing', state === 'sharing'), paint: BLACK });
  return layers;
}

/** Tray glyph in colour: a filled hexagon with the white network (or "!") cut into it. */
function colourLayers(state: State): Layer[] {
  const layers: Layer[] = [{ shape: hexFill(0.97), paint: COLOURS[state] }];
  if (state === 'error') layers.push({ shape: exclamation(1.05, 0.22), paint: WHITE });
  else layers.push({ shape: graph(0.58, 0.13, 0.15, state === 'sharing', state === 'sharing'), paint: WHITE });
  if (state === 'idle') layers.push({ shape: hexStroke(0.58, 0.08), paint: [255, 255, 255, 0.55] });
  return layers;
}

/** App icon: rounded square with a blue gradient and the white glyph. */
function appLayers(): Layer[] {
  const top: RGBA = [76, 141, 246, 1];
  const bottom: RGBA = [52, 64, 196, 1];
  const gradient = (_x: number, y: number): RGBA => {
    const t = (y + 1) / 2;
    return [0, 1, 2].map((i) => Math.round(top[i] + (bottom[i] - top[i]) * t)).concat(1) as RGBA;
  };
  return [
    { shape: roundedSquare(0.88, 0.2), paint: gradient },
    { shape: hexStroke(0.56, 0.075), paint: WHITE },
    { shape: graph(0.56, 0.06, 0.095, true, true), paint: WHITE },
  ];
}

function write(name: string, data: Buffer): void {
  fs.writeFileSync(path.join(OUT, name), data);
  console.log(`assets/${name}  ${data.length} bytes`);
}

fs.mkdirSync(OUT, { recursive: true });
for (const state of ['sharing', 'idle', 'error'] as const) {
  // Electron picks "Template" images up as macOS template images and "@2x" for Retina.
  const base = state === 'sharing' ? 'tray' : `tray-${state}`;
  write(`${base}Template.png`, render(16, templateLayers(state)));
  write(`${base}Template@2x.png`, render(32, templateLayers(state)));
  write(`tray-${state}.png`, render(32, colourLayers(state)));
  write(`tray-${state}@2x.png`, render(64, colourLayers(state)));
}
write('icon.png', render(512, appLayers(), 3));
// The installers' icon: macOS wants 1024 px for its .icns, Linux packages take sizes up to 512 from it.
write('icon-1024.png', render(1024, appLayers(), 2));
write('favicon.png', render(64, appLayers()));
