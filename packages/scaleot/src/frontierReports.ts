import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { FrontierPoint, FrontierResult } from './frontier.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';

/** Existing reports read as one frontier (`scaleot frontier --from`). */
export interface FrontierFromReports extends FrontierResult {
  /** The task every report is about; null when only frontier.json files (which do not name it) were read. */
  task: string | null;
  metric: string;
  higherIsBetter: boolean;
  /** The files read, in order. */
  sources: string[];
}

/** File names a directory given to {@link frontierFromReports} contributes. */
export const FRONTIER_REPORT_FILES = ['frontier.json', 'report.json', 'audit.json'] as const;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function bad(file: string, message: string): ScaleotMethodError {
  return new ScaleotMethodError('BAD_REPORT', `${file}: ${message}`, { where: file });
}

/**
 * Reads the privacy–utility points of reports already written, so they can be charted without running
 * anything: `scaleot report`'s report.json (one emulator), a coordinator request's report.json (one
 * preset), the demo's report.json (one point per preset) and an earlier `scaleot frontier`'s
 * frontier.json (its points). Each input is a file or a directory; a directory contributes every
 * frontier.json and report.json beneath it, except the per-point reports under a frontier.json's
 * directory (the frontier already holds them). Every report must use one metric (and name one task);
 * labels that repeat across files get the file's directory name appended. A `scaleot audit`'s audit.json
 * gives its best attacker to the point whose emulator directory it audited (the better of two when the
 * report had one); an audit of an emulator no report given was tuned on is refused.
 */
export async function frontierFromReports(inputs: string[]): Promise<FrontierFromReports> {
  if (inputs.length === 0) throw new ScaleotMethodError('BAD_OPTION', 'no reports given: name report.json / frontier.json files or directories holding them', { where: '--from' });
  const files: string[] = [];
  for (const input of inputs) {
    const path = resolve(input);
    const st = await stat(path).catch(() => undefined);
    if (!st) throw bad(input, 'does not exist');
    if (st.isDirectory()) {
      const found = await reportFilesUnder(path);
      if (found.length === 0) throw bad(input, `holds no ${FRONTIER_REPORT_FILES.join(' or ')}`);
      files.push(...found);
    } else files.push(path);
  }
  const sources = [...new Set(files)];
  const read: { file: string; points: FrontierPoint[]; task: string | null; audit?: AuditOf }[] = [];
  for (const file of sources) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (cause) {
      throw new ScaleotMethodError('BAD_REPORT', `${file}: not JSON (${cause instanceof Error ? cause.message : String(cause)})`, { where: file, cause });
    }
    read.push({ file, ...pointsOf(file, parsed) });
  }
  const first = read.find((r) => r.points.length > 0);
  if (!first) throw new ScaleotMethodError('BAD_REPORT', `no point to plot in ${sources.join(', ')}`, { where: sources[0] });
  const metric = first.points[0].metric;
  for (const r of read) {
    const other = r.points.find((p) => p.metric !== metric);
    if (other) throw bad(r.file, `reports ${other.metric}, ${first.file} reports ${metric}; plot the reports of one task together`);
  }
  const tasks = [...new Set(read.map((r) => r.task).filter((t): t is string => t !== null))];
  if (tasks.length > 1) {
    const files = tasks.map((t) => `${t} (${read.find((r) => r.task === t)!.file})`);
    throw new ScaleotMethodError('BAD_REPORT', `the reports are about different tasks: ${files.join(', ')}; plot the reports of one task together`, { where: read[0].file });
  }
  const points = uniqueLabels(read.flatMap((r) => r.points.map((point) => ({ point, file: r.file }))));
  for (const { file, audit } of read) if (audit) applyAudit(file, audit, points);
  return { points, seconds: points.reduce((s, p) => s + p.seconds, 0), task: tasks[0] ?? null, metric, higherIsBetter: first.points[0].higherIsBetter, sources };
}

async function reportFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = new Set(entries.filter((e) => e.isFile()).map((e) => e.name));
  // A frontier's work directory: frontier.json holds every point of its reports/<point>/ too.
  if (names.has('frontier.json')) return [join(dir, 'frontier.json')];
  const out = (['report.json', 'audit.json'] as const).filter((n) => names.has(n)).map((n) => join(dir, n));
  for (const e of entries.filter((e) => e.isDirectory() && e.name !== 'node_modules' && !e.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(...(await reportFilesUnder(join(dir, e.name))));
  }
  return out;
}

/** What a `scaleot audit` (audit.json) says of one emulator directory. */
interface AuditOf {
  emulatorDir: string;
  attacker: number;
  metric: string;
  higherIsBetter: boolean;
}

function applyAudit(file: string, audit: AuditOf, points: FrontierPoint[]): void {
  const matches = points.filter((p) => p.emulatorDir !== '' && resolve(p.emulatorDir) === audit.emulatorDir);
  if (matches.length === 0) throw bad(file, `audits ${audit.emulatorDir}, which none of the reports read was tuned on; give that emulator's report.json too`);
  if (matches[0].metric !== audit.metric) throw bad(file, `reports ${audit.metric}, the report of its emulator reports ${matches[0].metric}`);
  const better = (a: number, b: number) => (audit.higherIsBetter ? Math.max(a, b) : Math.min(a, b));
  for (const p of matches) p.attacker = p.attacker === null ? audit.attacker : better(p.attacker, audit.attacker);
}

/** The points of one parsed file, by its shape. */
function pointsOf(file: string, raw: unknown): { points: FrontierPoint[]; task: string | null; audit?: AuditOf } {
  if (!isObject(raw)) throw bad(file, 'is not a JSON object');
  // `scaleot audit`'s audit.json: {attacker, attackers, emulator: {dir, ...}, metric, ...}; no point of its own.
  if (isObject(raw.attackers) && isObject(raw.emulator) && typeof raw.emulator.dir === 'string') {
    if (!isNumber(raw.attacker)) throw bad(file, `attacker is not a number (${JSON.stringify(raw.attacker) ?? 'missing'})`);
    if (typeof raw.metric !== 'string') throw bad(file, 'metric is missing');
    const audit = { emulatorDir: resolve(raw.emulator.dir), attacker: raw.attacker, metric: raw.metric, higherIsBetter: raw.higherIsBetter === true };
    return { points: [], task: typeof raw.task === 'string' ? raw.task : null, audit };
  }
  // An earlier `scaleot frontier`: {points: FrontierPoint[], seconds}.
  if (Array.isArray(raw.points)) return { points: raw.points.map((p, i) => frontierPoint(file, p, i)), task: null };
  // The demo's report.json: {task, reports: [{preset, request, report: five numbers}]}.
  if (Array.isArray(raw.reports)) {
    const task = typeof raw.task === 'string' ? raw.task : null;
    return {
      points: raw.reports.map((entry, i) => {
        if (!isObject(entry) || !isObject(entry.report)) throw bad(file, `reports[${i}] has no five numbers`);
        return presetPoint(file, entry.report, entry.preset, `reports[${i}]`);
      }),
      task,
    };
  }
  const task = typeof raw.task === 'string' ? raw.task : null;
  // `scaleot report`'s report.json: the five numbers with the emulator's manifest.
  if (isObject(raw.emulator)) return { points: [reportPoint(file, raw)], task };
  // A coordinator request's report.json: {request, preset, baseModel, ...five numbers}.
  if (isObject(raw.preset)) return { points: [presetPoint(file, raw, raw.preset, 'report')], task };
  throw bad(file, "is not a report to plot: expected the report.json of `scaleot report`, of the demo or of a coordinator request, or a frontier.json");
}

function numbers(file: string, r: Json, where: string): Pick<FrontierPoint, 'full_zero_shot' | 'emulator_zero_shot' | 'emulator_fine_tuned' | 'plug_in' | 'attacker' | 'metric' | 'higherIsBetter'> {
  for (const key of ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in'] as const) {
    if (!isNumber(r[key])) throw bad(file, `${where}.${key} is not a number (${JSON.stringify(r[key]) ?? 'missing'})`);
  }
  if (typeof r.metric !== 'string' || r.metric.length === 0) throw bad(file, `${where}.metric is missing`);
  return {
    full_zero_shot: r.full_zero_shot as number,
    emulator_zero_shot: r.emulator_zero_shot as number,
    emulator_fine_tuned: r.emulator_fine_tuned as number,
    plug_in: r.plug_in as number,
    // The privacy audit's best attacker (`report --audit`, a frontier run with --audit); null when not audited.
    attacker: isNumber(r.attacker) ? r.attacker : null,
    metric: r.metric,
    higherIsBetter: typeof r.higherIsBetter === 'boolean' ? r.higherIsBetter : r.metric === 'accuracy',
  };
}

function fraction(file: string, value: unknown, where: string): number {
  if (!isNumber(value) || value < 0 || value >= 1) throw bad(file, `${where} is not a fraction in [0, 1) (${JSON.stringify(value) ?? 'missing'})`);
  return value;
}

/** A ScaleOT emulator at (α, β); (0, 0) replaces and compresses nothing: runFrontier's adapter ceiling. */
function scaleotIdentity(alpha: number, beta: number): Pick<FrontierPoint, 'label' | 'kind' | 'alpha' | 'beta'> {
  if (alpha === 0 && beta === 0) return { label: 'adapter ceiling', kind: 'ceiling', alpha, beta };
  return { label: `scaleot α=${alpha} β=${beta}`, kind: 'scaleot', alpha, beta };
}

function presetPoint(file: string, r: Json, preset: unknown, where: string): FrontierPoint {
  if (!isObject(preset)) throw bad(file, `${where} names no privacy preset`);
  const alpha = fraction(file, preset.alpha, `${where}.preset.alpha`);
  const beta = fraction(file, preset.beta, `${where}.preset.beta`);
  return { ...scaleotIdentity(alpha, beta), ...numbers(file, r, where), blocks: null, emulatorDir: '', seconds: 0 };
}

function reportPoint(file: string, r: Json): FrontierPoint {
  const emulator = r.emulator as Json;
  const parameters = isObject(emulator.parameters) ? emulator.parameters : {};
  let identity: Pick<FrontierPoint, 'label' | 'kind' | 'alpha' | 'beta'>;
  if (emulator.method === 'scaleot') identity = scaleotIdentity(fraction(file, parameters.alpha, 'emulator.parameters.alpha'), fraction(file, parameters.beta, 'emulator.parameters.beta'));
  else if (emulator.method === 'uniform') identity = { label: 'uniform LayerDrop', kind: 'uniform-layerdrop', alpha: null, beta: null };
  else throw bad(file, `emulator.method ${JSON.stringify(emulator.method)} is neither scaleot nor uniform`);
  const artifacts = isObject(r.artifacts) ? r.artifacts : {};
  const timings = isObject(r.timings) ? r.timings : {};
  return {
    ...identity,
    ...numbers(file, r, 'report'),
    blocks: isNumber(emulator.blocks) ? emulator.blocks : null,
    emulatorDir: typeof artifacts.emulatorDir === 'string' ? artifacts.emulatorDir : '',
    seconds: isNumber(timings.total) ? timings.total : 0,
  };
}

const KINDS: FrontierPoint['kind'][] = ['scaleot', 'uniform-layerdrop', 'ceiling'];

function frontierPoint(file: string, p: unknown, i: number): FrontierPoint {
  const where = `points[${i}]`;
  if (!isObject(p)) throw bad(file, `${where} is not an object`);
  if (typeof p.label !== 'string' || !KINDS.includes(p.kind as FrontierPoint['kind'])) throw bad(file, `${where} needs a label and a kind (${KINDS.join(', ')})`);
  const nullable = (v: unknown, key: string) => (v === null ? null : fraction(file, v, `${where}.${key}`));
  return {
    label: p.label,
    kind: p.kind as FrontierPoint['kind'],
    alpha: nullable(p.alpha, 'alpha'),
    beta: nullable(p.beta, 'beta'),
    ...numbers(file, p, where),
    blocks: isNumber(p.blocks) ? p.blocks : null,
    emulatorDir: typeof p.emulatorDir === 'string' ? p.emulatorDir : '',
    seconds: isNumber(p.seconds) ? p.seconds : 0,
  };
}

/** Labels name the chart's legend entries: a label that repeats gets its file's directory name (then a count). */
function uniqueLabels(entries: { point: FrontierPoint; file: string }[]): FrontierPoint[] {
  const count = new Map<string, number>();
  for (const { point } of entries) count.set(point.label, (count.get(point.label) ?? 0) + 1);
  const used = new Set<string>();
  return entries.map(({ point, file }) => {
    let label = point.label;
    if (count.get(label)! > 1) label = `${label} (${basename(dirname(file))})`;
    for (let n = 2; used.has(label); n++) label = `${point.label} (${basename(dirname(file))} #${n})`;
    used.add(label);
    return { ...point, label };
  });
}
