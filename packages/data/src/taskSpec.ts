import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { TaskError } from './TaskError.js';
import { parseTemplate, type ParsedTemplate } from './template.js';

/** Version of the task spec format this code reads. */
export const TASK_SPEC_VERSION = 1;

/**
 * Version of the evaluation protocols implemented here (LM stream/blocks and lm-eval style
 * classification exactly as ../shared/fixtures/README.md). Reports record it next to their numbers.
 */
export const PROTOCOL_VERSION = 1;

/** The spec file looked for when `loadTaskSpec` is given a directory. */
export const TASK_SPEC_FILE = 'task.json';

export type TaskType = 'lm' | 'classification';
export type TaskSplit = 'train' | 'test';
export type TaskRow = Record<string, unknown>;

interface TaskSpecBase {
  version: 1;
  name: string;
  /** JSONL file of training rows, relative to the spec's directory. At least one of train/test. */
  train?: string;
  /** JSONL file of evaluation rows, relative to the spec's directory. */
  test?: string;
}

export interface LmTaskSpec extends TaskSpecBase {
  type: 'lm';
  /** Row field holding a document's text. Default: "text". */
  textField: string;
}

export interface ClassificationTaskSpec extends TaskSpecBase {
  type: 'classification';
  /** `{field}` placeholders filled from the row, `{{`/`}}` for literal braces. */
  promptTemplate: string;
  /** Text after the (truncated) prompt, encoded on its own. Default: "" (none). */
  suffix: string;
  /** Label → continuation text, in the order used for tie-breaking (first wins). At least two. */
  candidates: Record<string, string>;
  /** Row field holding the label; must be a key of `candidates`. Default: "label". */
  labelField: string;
}

export type TaskSpec = LmTaskSpec | ClassificationTaskSpec;

/** A validated task: its spec and every row of its splits, read and checked up front. */
export interface Task {
  spec: TaskSpec;
  /** The spec file (or `<builtin:name>`); errors about the spec name it. */
  specFile: string;
  /** Directory the split files are resolved against. */
  dir: string;
  /** Absolute paths of the split files present. */
  files: Partial<Record<TaskSplit, string>>;
  train?: TaskRow[];
  test?: TaskRow[];
}

const COMMON_FIELDS = ['version', 'name', 'type', 'train', 'test'];
const FIELDS: Record<TaskType, string[]> = {
  lm: [...COMMON_FIELDS, 'textField'],
  classification: [...COMMON_FIELDS, 'promptTemplate', 'suffix', 'candidates', 'labelField'],
};

/**
 * Reads and validates a task: `pathOrDir` is a spec JSON file or a directory holding `task.json`.
 * Split files are read and every row checked (fields present, labels among the candidates), so bad
 * input fails here with a TaskError that names the file, line and field, before any work starts.
 */
export async function loadTaskSpec(pathOrDir: string): Promise<Task> {
  let specFile = resolve(pathOrDir);
  const info = await stat(specFile).catch((cause: NodeJS.ErrnoException) => {
    throw new TaskError(cause.code === 'ENOENT' ? 'does not exist; pass a task spec JSON file or a directory holding task.json' : `cannot be read: ${cause.message}`, { file: specFile, cause });
  });
  if (info.isDirectory()) specFile = join(specFile, TASK_SPEC_FILE);
  const text = await readText(specFile);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new TaskError(`is not valid JSON: ${(cause as Error).message}`, { file: specFile, cause });
  }
  const spec = validateTaskSpec(raw, specFile);
  return loadTaskData(spec, specFile, dirname(specFile));
}

/**
 * Checks a parsed spec object and fills defaults. Unknown fields are rejected so that a misspelt
 * optional field does not silently fall back to its default.
 */
export function validateTaskSpec(raw: unknown, specFile: string): TaskSpec {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TaskError('must be a JSON object like {"version": 1, "name": ..., "type": "lm" | "classification", ...}', { file: specFile });
  }
  const obj = raw as Record<string, unknown>;
  if (obj.version === undefined) throw new TaskError(`is missing; add "version": ${TASK_SPEC_VERSION}`, { file: specFile, field: 'version' });
  if (obj.version !== TASK_SPEC_VERSION) {
    throw new TaskError(`${JSON.stringify(obj.version)} is not a supported task spec version; this build reads version ${TASK_SPEC_VERSION}`, { file: specFile, field: 'version' });
  }
  const name = requireString(obj, 'name', specFile);
  if (obj.type !== 'lm' && obj.type !== 'classification') {
    throw new TaskError(`${obj.type === undefined ? 'is missing' : `${JSON.stringify(obj.type)} is unknown`}; use "lm" (language modelling) or "classification"`, { file: specFile, field: 'type' });
  }
  const type: TaskType = obj.type;
  for (const key of Object.keys(obj)) {
    if (!FIELDS[type].includes(key)) {
      throw new TaskError(`is not a field of a "${type}" task spec (allowed: ${FIELDS[type].join(', ')})`, { file: specFile, field: key });
    }
  }
  const train = optionalString(obj, 'train', specFile);
  const test = optionalString(obj, 'test', specFile);
  if (train === undefined && test === undefined) {
    throw new TaskError('a task needs a "train" or a "test" JSONL file (or both), relative to the spec', { file: specFile, field: 'train' });
  }
  const base = { version: TASK_SPEC_VERSION as 1, name, ...(train !== undefined && { train }), ...(test !== undefined && { test }) };

  if (type === 'lm') {
    return { ...base, type, textField: optionalString(obj, 'textField', specFile) ?? 'text' };
  }
  const promptTemplate = requireString(obj, 'promptTemplate', specFile);
  parseTemplate(promptTemplate, specFile);
  const suffix = optionalString(obj, 'suffix', specFile, true) ?? '';
  const labelField = optionalString(obj, 'labelField', specFile) ?? 'label';
  const candidates = obj.candidates;
  if (candidates === undefined) {
    throw new TaskError('is missing; add e.g. {"ham": " ham", "spam": " spam"} (label → continuation text)', { file: specFile, field: 'candidates' });
  }
  if (typeof candidates !== 'object' || candidates === null || Array.isArray(candidates)) {
    throw new TaskError('must be an object mapping each label to its continuation text', { file: specFile, field: 'candidates' });
  }
  const entries = Object.entries(candidates as Record<string, unknown>);
  if (entries.length < 2) throw new TaskError(`needs at least two labels, got ${entries.length}`, { file: specFile, field: 'candidates' });
  for (const [label, continuation] of entries) {
    if (typeof continuation !== 'string' || continuation.length === 0) {
      throw new TaskError('must be a non-empty string (the text the model is scored on)', { file: specFile, field: `candidates.${label}` });
    }
  }
  return { ...base, type, promptTemplate, suffix, candidates: Object.fromEntries(entries) as Record<string, string>, labelField };
}

/** Reads and checks the split files of an already validated spec; `dir` resolves relative file names. */
export async function loadTaskData(spec: TaskSpec, specFile: string, dir: string): Promise<Task> {
  const task: Task = { spec, specFile, dir, files: {} };
  const template = spec.type === 'classification' ? parseTemplate(spec.promptTemplate, specFile) : undefined;
  for (const split of ['train', 'test'] as const) {
    const name = spec[split];
    if (name === undefined) continue;
    const file = isAbsolute(name) ? name : join(dir, name);
    const rows = parseJsonl(await readText(file, specFile, split), file);
    if (rows.length === 0) {
      throw new TaskError(`is empty: the "${split}" split needs at least one JSON object per line`, { file, field: split });
    }
    for (const { row, line } of rows) checkTaskRow(row, spec, file, line, template);
    task.files[split] = file;
    task[split] = rows.map((r) => r.row);
  }
  return task;
}

/** The rows of one split, or a TaskError when the spec defines no such split. */
export function taskRows(task: Task, split: TaskSplit): TaskRow[] {
  const rows = task[split];
  if (rows === undefined) {
    throw new TaskError(`task "${task.spec.name}" has no "${split}" split; add "${split}": "<file>.jsonl" to its spec`, { file: task.specFile, field: split });
  }
  return rows;
}

/**
 * Candidate labels in scoring order (`labelIndex` and `predictions` index into this): the key order of
 * the spec's `candidates` object as JavaScript reads it, i.e. file order, except that integer-like
 * labels ("0", "1", …) come first in ascending order.
 */
export function candidateLabels(spec: ClassificationTaskSpec): string[] {
  return Object.keys(spec.candidates);
}

interface NumberedRow {
  row: TaskRow;
  line: number;
}

/** JSON lines; blank lines are skipped, line numbers are 1-based physical lines. */
export function parseJsonl(text: string, file: string): NumberedRow[] {
  const rows: NumberedRow[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new TaskError(`is not valid JSON (${(cause as Error).message}); each line must be one JSON object`, { file, line: i + 1, cause });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TaskError('must be a JSON object (one row per line)', { file, line: i + 1 });
    }
    rows.push({ row: value as TaskRow, line: i + 1 });
  }
  return rows;
}

/** Checks one row against a spec; `line` is reported in errors (an index + 1 for in-memory rows). */
export function checkTaskRow(row: TaskRow, spec: TaskSpec, file: string, line: number, template?: ParsedTemplate): void {
  if (spec.type === 'lm') {
    if (typeof row[spec.textField] !== 'string') {
      throw new TaskError(`${row[spec.textField] === undefined ? 'is missing from the row' : 'must be a string'}; "textField" of the spec names the field with the document text`, { file, line, field: spec.textField });
    }
    return;
  }
  const parsed = template ?? parseTemplate(spec.promptTemplate, file);
  for (const field of parsed.fields) {
    const value = row[field];
    if (value === undefined) {
      throw new TaskError(`is used by "promptTemplate" but missing from the row (row fields: ${Object.keys(row).join(', ')})`, { file, line, field });
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new TaskError('is used by "promptTemplate" and must be a string, number or boolean', { file, line, field });
    }
  }
  const label = row[spec.labelField];
  if (label === undefined) {
    throw new TaskError(`is missing from the row; "labelField" of the spec names the field holding the label`, { file, line, field: spec.labelField });
  }
  if (typeof label !== 'string' || !Object.hasOwn(spec.candidates, label)) {
    throw new TaskError(`${JSON.stringify(label)} is not among the candidates (${candidateLabels(spec).map((l) => JSON.stringify(l)).join(', ')}); fix the row or add the label to "candidates"`, { file, line, field: spec.labelField });
  }
}

async function readText(file: string, specFile?: string, split?: TaskSplit): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    const err = cause as NodeJS.ErrnoException;
    if (specFile !== undefined && split !== undefined) {
      throw new TaskError(`names ${file}, which ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.message})`}; paths are relative to the spec's directory`, { file: specFile, field: split, cause });
    }
    throw new TaskError(err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.message}`, { file, cause });
  }
}

function requireString(obj: Record<string, unknown>, field: string, file: string): string {
  const value = obj[field];
  if (value === undefined) throw new TaskError('is missing; it is required', { file, field });
  if (typeof value !== 'string' || value.length === 0) throw new TaskError('must be a non-empty string', { file, field });
  return value;
}

function optionalString(obj: Record<string, unknown>, field: string, file: string, allowEmpty = false): string | undefined {
  const value = obj[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0)) {
    throw new TaskError(`must be a${allowEmpty ? '' : ' non-empty'} string`, { file, field });
  }
  return value;
}
