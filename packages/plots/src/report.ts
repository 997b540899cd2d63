import { esc } from './esc.js';

/** A table: a header row and body rows; numeric-looking cells are right-aligned. */
export interface ReportTable {
  header: string[];
  rows: (string | number)[][];
}

/** One section of a report, written once and rendered both as Markdown and as HTML. */
export interface ReportSection {
  heading: string;
  /** Paragraphs of prose (`**bold**` and `` `code` `` are kept in Markdown and rendered in HTML). */
  text?: string | string[];
  /** A bulleted list. */
  list?: string[];
  /** A table (an object), or a Markdown pipe table (a string, parsed into a real table for HTML). */
  table?: ReportTable | string;
  /** An inline SVG chart (HTML). */
  svg?: string;
  /** The chart's file, relative to the Markdown file (Markdown links it as an image). */
  image?: string;
}

const NUMERIC = /^[-+−]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*%?$/;

/** Parses a Markdown pipe table (`| a | b |`, a `|---|` separator row, body rows). */
export function parseMarkdownTable(markdown: string): ReportTable {
  const lines = markdown.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('|'));
  const cells = (line: string) => line.replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const rows = lines.filter((l) => !/^\|[\s:|-]+\|$/.test(l)).map(cells);
  return { header: rows[0] ?? [], rows: rows.slice(1) };
}

function asTable(table: ReportTable | string): ReportTable {
  return typeof table === 'string' ? parseMarkdownTable(table) : table;
}

function inlineHtml(text: string): string {
  return esc(text)
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

function paragraphs(text: string | string[] | undefined): string[] {
  return text === undefined ? [] : Array.isArray(text) ? text : [text];
}

/** The report as Markdown. */
export function markdownReport(title: string, sections: ReportSection[], intro?: string | string[]): string {
  const out = [`# ${title}`, ''];
  for (const p of paragraphs(intro)) out.push(p, '');
  for (const s of sections) {
    out.push(`## ${s.heading}`, '');
    for (const p of paragraphs(s.text)) out.push(p, '');
    if (s.list) out.push(...s.list.map((item) => `- ${item}`), '');
    if (s.table) {
      const t = asTable(s.table);
      out.push(`| ${t.header.join(' | ')} |`, `|${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...t.rows.map((r) => `| ${r.join(' | ')} |`), '');
    }
    if (s.image) out.push(`![${s.heading}](${s.image})`, '');
  }
  return out.join('\n');
}

function tableHtml(table: ReportTable): string {
  const cell = (tag: 'td' | 'th', v: string | number) => {
    const s = String(v);
    return `<${tag}${NUMERIC.test(s) ? ' class="num"' : ''}>${inlineHtml(s)}</${tag}>`;
  };
  return `<table>
<thead><tr>${table.header.map((h) => `<th scope="col">${inlineHtml(h)}</th>`).join('')}</tr></thead>
<tbody>
${table.rows.map((r) => `<tr>${r.map((v, i) => (i === 0 ? cell('th', v).replace('<th', '<th scope="row"') : cell('td', v))).join('')}</tr>`).join('\n')}
</tbody>
</table>`;
}

export const REPORT_CSS = `body{font-family:"DejaVu Sans",Verdana,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.5}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.3em .7em;text-align:left}
thead th{background:#eef2f7}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f2f2f2;padding:0 .25em;border-radius:3px}figure{margin:1em 0}svg{max-width:100%;height:auto}`;

/** A self-contained HTML page: title, prose, real tables and the charts inline (no external files). */
export function htmlReport(title: string, sections: ReportSection[], intro?: string | string[]): string {
  const parts = sections.map((s) =>
    [
      `<section><h2>${esc(s.heading)}</h2>`,
      ...paragraphs(s.text).map((p) => `<p>${inlineHtml(p)}</p>`),
      s.list ? `<ul>\n${s.list.map((item) => `<li>${inlineHtml(item)}</li>`).join('\n')}\n</ul>` : '',
      s.table ? tableHtml(asTable(s.table)) : '',
      s.svg ? `<figure role="img" aria-label="${esc(s.heading)}">${s.svg}</figure>` : '',
      '</section>',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title>
<style>${REPORT_CSS}</style>
</head><body>
<h1>${esc(title)}</h1>
${paragraphs(intro).map((p) => `<p>${inlineHtml(p)}</p>`).join('\n')}
${parts.join('\n')}
</body></html>
`;
}
