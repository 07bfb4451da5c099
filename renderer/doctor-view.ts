// The window's "Why isn't Nix using Peernix?" card: `peernix doctor`'s checks, each with its fix.
// Self-contained (its own card, appended to the page) so the page needs one call to show it. Every
// string is a text node: details carry peer names and paths, which are hostile input from the LAN.
import type { DoctorCheck, DoctorReport, PeernixBridge } from '../src/base/api.ts';
import { CONTROL_API } from '../src/control/contract.ts';

const COLOUR: Record<DoctorCheck['status'], string> = { ok: '#2e7d32', warn: '#b26a00', fail: '#c62828', unknown: '#616161' };
const LABEL: Record<DoctorCheck['status'], string> = { ok: 'OK', warn: 'Warning', fail: 'Problem', unknown: "Can't tell" };

/** Over the bridge in the app; over the control API on the dashboard (same origin, GET needs no token). */
async function fetchReport(bridge: PeernixBridge): Promise<DoctorReport> {
  if (bridge.doctor) return bridge.doctor();
  const res = await fetch(CONTROL_API.doctor, { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()) as DoctorReport;
}

function el<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

export function renderDoctorChecks(doc: Document, list: HTMLElement, report: DoctorReport): void {
  list.replaceChildren();
  for (const c of report.checks) {
    const item = el(doc, 'li');
    item.dataset.testid = 'doctor-check';
    item.dataset.check = c.id;
    item.dataset.status = c.status;
    item.style.margin = '0.5em 0';
    // Details and fixes carry long paths and URLs: they wrap rather than widen a narrow window.
    item.style.overflowWrap = 'anywhere';
    const badge = el(doc, 'strong', LABEL[c.status]);
    badge.style.color = COLOUR[c.status];
    const title = el(doc, 'span', ` ${c.title}: `);
    const detail = el(doc, 'span', c.detail);
    item.append(badge, title, detail);
    if (c.fix && c.status !== 'ok') {
      const fix = el(doc, 'pre', c.fix);
      fix.dataset.testid = 'doctor-fix';
      fix.style.whiteSpace = 'pre-wrap';
      fix.style.overflowWrap = 'anywhere';
      fix.style.margin = '0.25em 0 0 1em';
      item.append(fix);
    }
    list.append(item);
  }
}

/** Adds the card to the page and runs the checks once; the button runs them again. */
export function mountDoctor(bridge: PeernixBridge, doc: Document = document): () => Promise<void> {
  const card = el(doc, 'section', undefined, 'card span-all');
  card.id = 'doctor';
  card.style.minWidth = '0';
  card.dataset.testid = 'doctor';
  const head = el(doc, 'div', undefined, 'card-head');
  const heading = el(doc, 'h2', "Why isn't Nix using Peernix?");
  const button = el(doc, 'button', 'Run checks');
  button.type = 'button';
  button.dataset.testid = 'doctor-run';
  head.append(heading, button);
  const summary = el(doc, 'p', 'Checking…', 'hint');
  summary.dataset.testid = 'doctor-summary';
  const list = el(doc, 'ul');
  list.style.listStyle = 'none';
  list.style.paddingLeft = '0';
  card.append(head, summary, list);
  (doc.querySelector('main') ?? doc.body).append(card);

  let running: Promise<void> | null = null;
  const run = () =>
    (running ??= (async () => {
      button.disabled = true;
      summary.textContent = 'Checking…';
      try {
        const report = await fetchReport(bridge);
        renderDoctorChecks(doc, list, report);
        summary.textContent =
          report.failed === 0 ? 'Nothing is wrong that can be seen from here.' : `${report.failed} problem(s) found; each says how to fix it.`;
      } catch (e) {
        summary.textContent = `Could not run the checks: ${(e as Error).message}`;
      } finally {
        button.disabled = false;
        running = null;
      }
    })());
  button.addEventListener('click', () => void run());
  void run();
  return run;
}
