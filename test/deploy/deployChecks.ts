// Structural checkers for the deployment files (Dockerfiles, Helm templates). No docker or helm binary
// is available where the tests run, so these read the files the way those tools would, closely enough
// to catch the mistakes that matter: unpinned images, root users, baked-in secrets, values the
// templates reference but values.yaml does not define.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART = join(ROOT, 'helm/scaleot');
export const INFRA = join(ROOT, 'infra');

export function read(path: string): string {
  return readFileSync(path, 'utf8');
}

export function listFiles(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort()
    .map((name) => join(dir, name));
}

export function loadYaml<T = unknown>(path: string): T {
  return parseYaml(read(path), { merge: true }) as T;
}

/** Deep merge with Helm's semantics: maps merge key by key, everything else (lists included) replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (isPlainObject(base) && isPlainObject(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(override)) out[key] = mergeValues(base[key], value);
    return out;
  }
  return override === undefined ? base : override;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------------
// Dockerfiles

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  /** The FROM argument: an image reference or an earlier stage's name. */
  base: string;
  name?: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into instructions (continuation lines joined, comments dropped) and stages. */
export function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  let buffer = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (buffer === '' && /^\s*(#.*)?$/.test(raw)) continue;
    if (buffer !== '' && /^\s*#/.test(raw)) continue;
    if (buffer === '') start = i + 1;
    if (/\\\s*$/.test(raw)) {
      buffer += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    buffer += raw;
    const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(buffer);
    if (m) instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: start });
    buffer = '';
  }
  const stages: Stage[] = [];
  // ARGs before the first FROM may name base images (`ARG BASE_IMAGE=node:...`, `FROM ${BASE_IMAGE}`):
  // a FROM is checked with their defaults, which is what `docker build` uses without --build-arg.
  const globalArgs = new Map<string, string>();
  for (const instruction of instructions) {
    if (instruction.keyword === 'ARG' && stages.length === 0) {
      for (const [name, value] of envPairs('ARG', instruction.args)) globalArgs.set(name, value ?? '');
    }
    if (instruction.keyword === 'FROM') {
      const parts = instruction.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const asIndex = parts.findIndex((p) => p.toLowerCase() === 'as');
      const base = parts[0].replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (ref, name: string) => globalArgs.get(name) ?? ref);
      stages.push({ base, name: asIndex >= 0 ? parts[asIndex + 1] : undefined, instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return stages;
}

/** An image reference pinned to a digest, or to a tag naming an exact version (major.minor.patch). */
export function isPinnedImage(ref: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(ref)) return true;
  const m = /^(?:[^/]+\/)*[^/:]+:([^/:@]+)$/.exec(ref);
  if (!m) return false;
  const tag = m[1];
  return /(^|[^0-9.])\d+\.\d+\.\d+/.test(tag) && !/latest|lts|current|stable/i.test(tag);
}

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH)/i;

/** Every problem found in a Dockerfile; empty when it passes. */
export function checkDockerfile(text: string): string[] {
  const problems: string[] = [];
  const stages = parseDockerfile(text);
  if (stages.length < 2) problems.push(`multi-stage build expected, found ${stages.length} FROM`);
  const names = new Set<string>();
  for (const stage of stages) {
    if (!names.has(stage.base) && !isPinnedImage(stage.base)) {
      problems.push(`FROM ${stage.base}: pin an exact version tag or a @sha256 digest`);
    }
    if (stage.name) names.add(stage.name);
    for (const { keyword, args, line } of stage.instructions) {
      const from = keyword === 'COPY' ? /--from=(\S+)/.exec(args)?.[1] : undefined;
      if (from && !names.has(from) && !/^\d+$/.test(from) && !isPinnedImage(from)) {
        problems.push(`line ${line}: COPY --from=${from} is neither a stage nor a pinned image`);
      }
      if (keyword === 'ENV' || keyword === 'ARG') {
        for (const [name, value] of envPairs(keyword, args)) {
          if (SECRET_NAME.test(name) && value !== undefined && value !== '') {
            problems.push(`line ${line}: ${keyword} ${name} bakes a secret-looking value into the image`);
          }
        }
      }
      if (keyword === 'ADD' && /https?:\/\//.test(args)) problems.push(`line ${line}: ADD from a URL; use a pinned RUN download`);
    }
  }
  const chain = stageChain(stages);
  const users = chain.flatMap((s) => s.instructions).filter((i) => i.keyword === 'USER');
  const user = users.at(-1)?.args.split(':')[0];
  if (user === undefined) problems.push('the final stage runs as root: add a USER');
  else if (user === 'root' || user === '0') problems.push(`the final stage runs as ${user}`);
  if (!chain.flatMap((s) => s.instructions).some((i) => i.keyword === 'HEALTHCHECK' && /\bCMD\b/.test(i.args))) {
    problems.push('the final stage has no HEALTHCHECK CMD');
  }
  return problems;
}

/** The final stage and the stages it is built FROM, base first. */
export function stageChain(stages: Stage[]): Stage[] {
  const chain: Stage[] = [];
  let current: Stage | undefined = stages.at(-1);
  while (current) {
    chain.unshift(current);
    const base = current.base;
    current = stages.slice(0, stages.indexOf(current)).reverse().find((s) => s.name === base);
  }
  return chain;
}

/** NAME=value pairs of an ENV or ARG instruction (also the legacy `ENV NAME value` form). */
export function envPairs(keyword: string, args: string): Array<[string, string | undefined]> {
  if (keyword === 'ENV' && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const [name, ...rest] = args.split(/\s+/);
    return [[name, rest.join(' ')]];
  }
  const pairs: Array<[string, string | undefined]> = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?/g;
  for (const m of args.matchAll(re)) pairs.push([m[1], m[2]?.replace(/^["']|["']$/g, '')]);
  return pairs;
}

/** ENV values in effect in the final stage (its own and its base stages'). */
export function finalEnv(stages: Stage[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const stage of stageChain(stages)) {
    for (const i of stage.instructions) {
      if (i.keyword === 'ENV') for (const [k, v] of envPairs('ENV', i.args)) env[k] = v ?? '';
    }
  }
  return env;
}

// ---------------------------------------------------------------------------------------------------
// Helm templates

/**
 * Replaces Go template actions so the YAML skeleton of a template can be parsed: comment blocks and
 * lines holding only actions (if/with/range/end, `toYaml | nindent` includes) disappear, inline
 * actions become a placeholder scalar. Both branches of a conditional stay, which is fine for a
 * structural check.
 */
export function renderAwayActions(template: string): string {
  const withoutComments = template.replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '');
  return withoutComments
    .split('\n')
    .filter((line) => !/^\s*(\{\{.*?\}\}\s*)+$/.test(line))
    .map((line) => line.replace(/\{\{.*?\}\}/g, 'TEMPLATED'))
    .join('\n');
}

export interface ValueRef {
  path: string[];
  /** True when the path descends into list items (`range`), checked against the schema's `items`. */
  viaItems: boolean;
  file: string;
}

/**
 * Every values path a template reads: `.Values.a.b` (also `$.Values`, `$root.Values`) and fields of
 * variables bound to values (`$c := .Values.coordinator`, `range $g := .Values.workerGroups`,
 * `$a := $g.autoscaling | default dict`).
 */
export function collectValueRefs(template: string, file: string): ValueRef[] {
  const refs: ValueRef[] = [];
  const aliases = new Map<string, { path: string[]; viaItems: boolean }>();
  const field = '((?:\\.[A-Za-z_][A-Za-z0-9_]*)+)';
  const split = (p: string) => p.split('.').filter(Boolean);
  for (const action of template.matchAll(/\{\{-?([\s\S]*?)-?\}\}/g)) {
    const body = action[1];
    if (/^\s*\/\*/.test(body)) continue;
    const binding = new RegExp(`(range\\s+)?(\\$[A-Za-z_][A-Za-z0-9_]*)\\s*:?=\\s*(?:\\$|\\$root)?\\.Values${field}`).exec(body);
    if (binding) {
      aliases.set(binding[2], { path: split(binding[3]), viaItems: Boolean(binding[1]) });
    }
    const derived = new RegExp(`(\\$[A-Za-z_][A-Za-z0-9_]*)\\s*:?=\\s*(\\$[A-Za-z_][A-Za-z0-9_]*)${field}`).exec(body);
    if (derived && aliases.has(derived[2])) {
      const base = aliases.get(derived[2])!;
      aliases.set(derived[1], { path: [...base.path, ...(base.viaItems ? ['[]'] : []), ...split(derived[3])], viaItems: base.viaItems });
    }
    for (const m of body.matchAll(new RegExp(`\\.Values${field}`, 'g'))) {
      refs.push({ path: split(m[1]), viaItems: false, file });
    }
    for (const m of body.matchAll(new RegExp(`(\\$[A-Za-z_][A-Za-z0-9_]*)${field}`, 'g'))) {
      const alias = aliases.get(m[1]);
      if (!alias || m[1] === '$') continue;
      const path = [...alias.path, ...(alias.viaItems && !alias.path.includes('[]') ? ['[]'] : []), ...split(m[2])];
      refs.push({ path, viaItems: alias.viaItems, file });
    }
  }
  return refs;
}

type Schema = { [key: string]: unknown };

/** The schema node at a values path (`[]` steps into `items`), following local `$ref`s and `allOf`. */
export function schemaAt(root: Schema, path: string[]): Schema | undefined {
  const deref = (node: Schema | undefined): Schema | undefined => {
    let current = node;
    for (let guard = 0; current && guard < 10; guard++) {
      if (typeof current.$ref === 'string') {
        current = current.$ref
          .replace(/^#\//, '')
          .split('/')
          .reduce<Schema | undefined>((n, key) => n?.[key] as Schema | undefined, root);
      } else if (Array.isArray(current.allOf) && !current.properties) {
        current = (current.allOf as Schema[]).map((s) => deref(s)).find((s) => s?.properties);
      } else break;
    }
    return current;
  };
  let node = deref(root);
  for (const step of path) {
    if (!node) return undefined;
    if (step === '[]') node = deref(node.items as Schema | undefined);
    else {
      const properties = node.properties as Record<string, Schema> | undefined;
      node = deref(properties?.[step]);
    }
  }
  return node;
}

/** Problems for refs that neither values.yaml (plain paths) nor the schema (list item paths) define. */
export function checkValueRefs(refs: ValueRef[], values: unknown, schema: Schema): string[] {
  const problems: string[] = [];
  for (const ref of refs) {
    const label = `${ref.file}: .Values.${ref.path.join('.').replace(/\.\[\]/g, '[]')}`;
    if (ref.path.includes('[]')) {
      if (!schemaAt(schema, ref.path)) problems.push(`${label} is not in values.schema.json`);
      continue;
    }
    let node: unknown = values;
    for (const key of ref.path) {
      if (Array.isArray(node)) break;
      if (!isPlainObject(node) || !(key in node)) {
        problems.push(`${label} is not defined in values.yaml`);
        break;
      }
      node = node[key];
    }
  }
  return [...new Set(problems)];
}
