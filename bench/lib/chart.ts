/**
 * bench/chart.png: wall time and peak RSS of each job against users (10k, 100k,
 * 1M), log scales, drawn as SVG and rendered to PNG with @resvg/resvg-js.
 */
import { Resvg } from '@resvg/resvg-js';
import type { JobName } from './jobs.ts';

/** Issue 16's memory goal for each job at 1M users: a CronJob can run with a 256Mi limit. */
export const PEAK_RSS_GOAL_MB = 256;

interface Point {
  users: number;
  job: JobName;
  wallS: number;
  peakRssMb: number;
  floorS: number | null;
}

const COLORS: Record<JobName, string> = { 'detect-inactivity': '#1f77b4', 'generate-drift-reports': '#d62728', 'sync-quickbooks': '#2ca02c' };
const W = 1200;
const H = 560;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) {
    const v = m * 10 ** e;
    if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
  }
  return out;
}

interface PanelOptions {
  /** Linear y axis from 0 (else log). */
  linear?: boolean;
  /** A horizontal goal line. */
  goal?: { value: number; label: string };
}

function panel(x0: number, title: string, yLabel: string, points: Point[], value: (p: Point) => number | null, dashed?: ((p: Point) => number | null) | null, o: PanelOptions = {}): string {
  const pw = 500;
  const ph = 360;
  const y0 = 120;
  const users = [...new Set(points.map((p) => p.users))].sort((a, b) => a - b);
  const vals = points.flatMap((p) => [value(p), dashed?.(p) ?? null]).filter((v): v is number => v !== null && v > 0);
  if (!users.length || !vals.length) return `<text x="${x0 + pw / 2}" y="${y0 + ph / 2}" text-anchor="middle">no data</text>`;
  const xLo = Math.min(...users) / 1.6;
  const xHi = Math.max(...users) * 1.6;
  if (o.goal) vals.push(o.goal.value);
  const step = 100;
  const yLo = o.linear ? 0 : 10 ** Math.floor(Math.log10(Math.min(...vals)));
  const yHi = o.linear ? Math.ceil((Math.max(...vals) * 1.1) / step) * step : 10 ** Math.ceil(Math.log10(Math.max(...vals)));
  const X = (u: number) => x0 + ((Math.log10(u) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo))) * pw;
  const Y = o.linear
    ? (v: number) => y0 + ph - ((v - yLo) / (yHi - yLo)) * ph
    : (v: number) => y0 + ph - ((Math.log10(v) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph;
  const ticks = o.linear ? Array.from({ length: yHi / step + 1 }, (_, i) => i * step) : logTicks(yLo, yHi);
  const parts: string[] = [];
  parts.push(`<text x="${x0 + pw / 2}" y="${y0 - 22}" text-anchor="middle" font-size="20" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  for (const t of ticks) {
    parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${Y(t)}" y2="${Y(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${x0 - 8}" y="${Y(t) + 5}" text-anchor="end" font-size="14">${label(t)}</text>`);
  }
  for (const u of users) {
    parts.push(`<line x1="${X(u)}" x2="${X(u)}" y1="${y0}" y2="${y0 + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${X(u)}" y="${y0 + ph + 22}" text-anchor="middle" font-size="14">${label(u)}</text>`);
  }
  parts.push(`<text x="${x0 + pw / 2}" y="${y0 + ph + 46}" text-anchor="middle" font-size="15">users (companies = users / 10)</text>`);
  if (o.goal) {
    parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${Y(o.goal.value)}" y2="${Y(o.goal.value)}" stroke="#888" stroke-width="2" stroke-dasharray="3 4"/>`);
    parts.push(`<text x="${x0 + pw - 8}" y="${Y(o.goal.value) - 6}" text-anchor="end" font-size="13" fill="#555">${esc(o.goal.label)}</text>`);
  }
  parts.push(`<text transform="translate(${x0 - 62} ${y0 + ph / 2}) rotate(-90)" text-anchor="middle" font-size="15">${esc(yLabel)}</text>`);
  const line = (pts: Array<[number, number]>, color: string, dash: boolean) =>
    pts.length > 1 ? `<polyline fill="none" stroke="${color}" stroke-width="${dash ? 2 : 3}" ${dash ? 'stroke-dasharray="6 5"' : ''} points="${pts.map(([u, v]) => `${X(u).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}"/>` : '';
  for (const job of Object.keys(COLORS) as JobName[]) {
    const mine = points.filter((p) => p.job === job).sort((a, b) => a.users - b.users);
    const main = mine.flatMap((p) => { const v = value(p); return v && v > 0 ? [[p.users, v] as [number, number]] : []; });
    parts.push(line(main, COLORS[job], false));
    for (const [u, v] of main) parts.push(`<circle cx="${X(u)}" cy="${Y(v)}" r="5" fill="${COLORS[job]}"/>`);
    if (dashed) {
      const fl = mine.flatMap((p) => { const v = dashed(p); return v && v > 0 ? [[p.users, v] as [number, number]] : []; });
      parts.push(line(fl, COLORS[job], true));
    }
  }
  return parts.join('\n');
}

/** The chart as PNG bytes. */
export function renderChart(rows: Point[]): Buffer {
  const legend = (Object.keys(COLORS) as JobName[]).map((job, i) =>
    `<rect x="${200 + i * 300}" y="${52}" width="26" height="6" fill="${COLORS[job]}"/><text x="${234 + i * 300}" y="${60}" font-size="16">${job}</text>`).join('\n');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="28" text-anchor="middle" font-size="22">Exit OSx cron jobs: wall time and memory against scale (2 cores)</text>
${panel(100, 'Wall time (dashed: the floor)', 'seconds', rows, (p) => p.wallS, (p) => p.floorS)}
${panel(680, 'Peak RSS of the job process', 'MB', rows, (p) => p.peakRssMb, null, { linear: true, goal: { value: PEAK_RSS_GOAL_MB, label: `goal: ${PEAK_RSS_GOAL_MB} MB` } })}
${legend}
</svg>`;
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: 'white' }).render().asPng();
}
