/** Small dependency-free SVG charts for the demo's plots. */

const W = 640;
const H = 320;
const PAD = { left: 60, right: 20, top: 36, bottom: 60 };

export function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function frame(title: string, body: string, yLabel: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>
<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>
<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="black"/>
<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="black"/>
${body}
</svg>
`;
}

function scale(values: number[]): { lo: number; hi: number; y: (v: number) => number } {
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(0, ...finite);
  let hi = Math.max(...finite, lo + 1e-9);
  if (hi === lo) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  hi += pad;
  if (lo < 0) lo -= pad;
  const y = (v: number) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  return { lo, hi, y };
}

function ticks(lo: number, hi: number, y: (v: number) => number): string {
  const out: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    out.push(`<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toPrecision(3))}</text><line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  return out.join('\n');
}

export function barChart(title: string, bars: { label: string; value: number | null; color?: string }[], yLabel: string): string {
  const { lo, hi, y } = scale(bars.map((b) => b.value ?? 0));
  const slot = (W - PAD.left - PAD.right) / Math.max(1, bars.length);
  const body = bars
    .map((b, i) => {
      const x = PAD.left + i * slot + slot * 0.15;
      const v = b.value ?? 0;
      const top = Math.min(y(v), y(0));
      const height = Math.abs(y(v) - y(0));
      return `<rect x="${x}" y="${top}" width="${slot * 0.7}" height="${height}" fill="${b.color ?? '#4e79a7'}"/>
<text x="${x + slot * 0.35}" y="${top - 4}" text-anchor="middle">${b.value === null ? 'n/a' : Number(v.toPrecision(4))}</text>
<text x="${x + slot * 0.35}" y="${H - PAD.bottom + 14}" text-anchor="middle">${esc(b.label)}</text>`;
    })
    .join('\n');
  return frame(title, `${ticks(lo, hi, y)}\n${body}`, yLabel);
}

export function lineChart(title: string, series: { name: string; values: number[]; color?: string }[], xLabel: string, yLabel: string): string {
  const all = series.flatMap((s) => s.values);
  const { lo, hi, y } = scale(all);
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i: number) => PAD.left + (i / (n - 1)) * (W - PAD.left - PAD.right);
  const colors = ['#4e79a7', '#e15759', '#59a14f', '#f28e2b'];
  const body = series
    .map((s, k) => {
      const color = s.color ?? colors[k % colors.length];
      const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>
<text x="${W - PAD.right - 4}" y="${PAD.top + 12 + 14 * k}" text-anchor="end" fill="${color}">${esc(s.name)}</text>`;
    })
    .join('\n');
  return frame(title, `${ticks(lo, hi, y)}\n${body}\n<text x="${W / 2}" y="${H - 16}" text-anchor="middle">${esc(xLabel)}</text>`, yLabel);
}

export interface ScatterPoint {
  label: string;
  x: number;
  y: number;
  /** Baselines are drawn as hollow squares, the method's points as filled circles. */
  baseline?: boolean;
  color?: string;
}

/** A labelled scatter plot with a dashed y = x diagonal (points above it: y worse than x when lower is better). */
export function scatterChart(title: string, points: ScatterPoint[], xLabel: string, yLabel: string): string {
  const xs = points.map((p) => p.x).filter(Number.isFinite);
  const ys = points.map((p) => p.y).filter(Number.isFinite);
  const lo = Math.min(...xs, ...ys);
  const hi = Math.max(...xs, ...ys);
  const pad = (hi - lo || 1) * 0.08;
  const a = lo - pad;
  const b = hi + pad;
  const sx = (v: number) => PAD.left + ((v - a) / (b - a)) * (W - PAD.left - PAD.right);
  const { y } = { y: (v: number) => H - PAD.bottom - ((v - a) / (b - a)) * (H - PAD.top - PAD.bottom) };
  const grid = ticks(a, b, y);
  const xticks = [0, 1, 2, 3, 4].map((k) => {
    const v = a + ((b - a) * k) / 4;
    return `<text x="${sx(v)}" y="${H - PAD.bottom + 14}" text-anchor="middle">${Number(v.toPrecision(3))}</text>`;
  }).join('\n');
  const diagonal = `<line x1="${sx(a)}" y1="${y(a)}" x2="${sx(b)}" y2="${y(b)}" stroke="#999" stroke-dasharray="4 4"/>`;
  const body = points
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
    .map((p) => {
      const color = p.color ?? (p.baseline ? '#e15759' : '#4e79a7');
      const mark = p.baseline
        ? `<rect x="${sx(p.x) - 5}" y="${y(p.y) - 5}" width="10" height="10" fill="none" stroke="${color}" stroke-width="2"/>`
        : `<circle cx="${sx(p.x)}" cy="${y(p.y)}" r="5" fill="${color}"/>`;
      return `${mark}<text x="${sx(p.x) + 8}" y="${y(p.y) - 6}" fill="${color}">${esc(p.label)}</text>`;
    })
    .join('\n');
  return frame(title, `${grid}\n${xticks}\n${diagonal}\n${body}\n<text x="${W / 2}" y="${H - 16}" text-anchor="middle">${esc(xLabel)}</text>`, yLabel);
}

/** A self-contained HTML page: a title, then sections of prose, Markdown-ish tables (pre) and inline SVGs. */
export function htmlReport(title: string, sections: { heading: string; text?: string; svg?: string; table?: string }[]): string {
  const parts = sections.map((s) => [
    `<h2>${esc(s.heading)}</h2>`,
    s.text ? `<p>${esc(s.text)}</p>` : '',
    s.svg ?? '',
    s.table ? `<pre>${esc(s.table)}</pre>` : '',
  ].join('\n'));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>${esc(title)}</h1>
${parts.join('\n')}
</body></html>
`;
}

/** The learned layer importance: one bar per block (adapter blocks grey: never scored). */
export function layerImportanceChart(blocks: { index: number; role: 'adapter' | 'middle'; score: number | null }[]): string {
  return barChart(
    'Stage 1: importance score per block (adapter blocks: n/a)',
    blocks.map((b) => ({ label: String(b.index), value: b.score, color: b.role === 'adapter' ? '#bbb' : '#4e79a7' })),
    'score s_i',
  );
}

/** Score trajectories of the middle blocks over stage-1 steps. */
export function scoreTrajectoryChart(trajectories: { step: number; scores: Record<string, number> }[]): string {
  const names = Object.keys(trajectories[0]?.scores ?? {});
  return lineChart(
    'Stage 1: importance score trajectories',
    names.map((n) => ({ name: `block ${n}`, values: trajectories.map((t) => t.scores[n] ?? 0) })),
    'step',
    'score s_i',
  );
}
