import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestError } from './OffsiteError.js';
import type { SourceModelInfo } from './sourceModel.js';

export const MANIFEST_VERSION = 1;
export const EMULATOR_MANIFEST = 'emulator.json';
export const ADAPTER_MANIFEST = 'adapter.json';
export const EMULATOR_WEIGHTS = 'model.safetensors';
export const ADAPTER_WEIGHTS = 'adapter.safetensors';

/** What became of one original block in an emulator. */
export type LayerAssignment =
  | 'adapter'
  | 'raw'
  | 'dropped'
  /** Replaced by another module; `kind` selects the factory (see `registerBlockKind`), `ref` its tensors' prefix. */
  | { replacedBy: { kind: string; ref: string } };

export interface LoraSpec {
  rank: number;
  alpha: number;
}

/** The adapter sandwich, in original block indices. */
export interface AdapterPlacement {
  nAdapter: number;
  bottom: number[];
  top: number[];
  /** LoRA inside the adapter blocks while tuning (merged into the dense weights on export); null when off. */
  lora: LoraSpec | null;
}

interface ManifestCommon {
  version: number;
  sourceModel: SourceModelInfo;
  /** How the emulator was made: 'uniform', 'scaleot', … */
  method: string;
  /** Every parameter of the method (and, for adapters, of the tuning run). */
  parameters: Record<string, unknown>;
  /** One entry per original block, index = original layer index. */
  layerMap: LayerAssignment[];
  adapter: AdapterPlacement;
  createdAt: string;
}

export interface EmulatorManifest extends ManifestCommon {
  format: 'scaleot.emulator';
  /** Compression applied to kept blocks, open-ended (e.g. `{src: {beta, ranks: {name: r}}}`). */
  compression: Record<string, unknown>;
}

export interface AdapterManifest extends ManifestCommon {
  format: 'scaleot.adapter';
  /** HF names of the tensors in `adapter.safetensors`. */
  tensors: string[];
}

export type Manifest = EmulatorManifest | AdapterManifest;

type Format = Manifest['format'];

/** Reads and validates `emulator.json` / `adapter.json` from an artifact directory. */
export async function readManifest(dir: string, format: 'scaleot.emulator'): Promise<EmulatorManifest>;
export async function readManifest(dir: string, format: 'scaleot.adapter'): Promise<AdapterManifest>;
export async function readManifest(dir: string, format: Format): Promise<Manifest> {
  const path = join(dir, format === 'scaleot.emulator' ? EMULATOR_MANIFEST : ADAPTER_MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ManifestError('MANIFEST_MISSING', `no ${format} manifest here; is this the right directory?`, { where: path, cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ManifestError('MANIFEST_JSON', 'manifest is not valid JSON', { where: path, cause });
  }
  return validateManifest(value, format, path);
}

/** Checks a parsed manifest; throws ManifestError naming the first problem. */
export function validateManifest(value: unknown, format: Format, where = 'manifest'): Manifest {
  const fail = (code: string, message: string): never => {
    throw new ManifestError(code, message, { where });
  };
  if (!isObject(value)) return fail('MANIFEST_FIELD', 'manifest must be a JSON object');
  const m = value as Record<string, unknown>;
  if (m.format !== format) return fail('MANIFEST_FORMAT', `format is ${JSON.stringify(m.format)}, expected "${format}"`);
  if (m.version !== MANIFEST_VERSION) {
    return fail('MANIFEST_VERSION', `unknown manifest version ${JSON.stringify(m.version)}; this build reads version ${MANIFEST_VERSION} (upgrade scaleot or re-export the artifact)`);
  }
  const src = m.sourceModel;
  if (!isObject(src)) return fail('MANIFEST_FIELD', 'sourceModel is missing');
  if (typeof src.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(src.sha256)) fail('MANIFEST_FIELD', 'sourceModel.sha256 must be a 64-hex-digit sha256');
  if (typeof src.modelType !== 'string') fail('MANIFEST_FIELD', 'sourceModel.modelType must be a string');
  if (!isPosInt(src.nLayer)) fail('MANIFEST_FIELD', 'sourceModel.nLayer must be a positive integer');
  if (!isPosInt(src.nEmbd)) fail('MANIFEST_FIELD', 'sourceModel.nEmbd must be a positive integer');
  if (typeof m.method !== 'string' || m.method === '') fail('MANIFEST_FIELD', 'method must be a non-empty string');
  if (!isObject(m.parameters)) fail('MANIFEST_FIELD', 'parameters must be an object');
  if (typeof m.createdAt !== 'string') fail('MANIFEST_FIELD', 'createdAt must be an ISO date string');
  const nLayer = src.nLayer as number;
  if (!Array.isArray(m.layerMap) || m.layerMap.length !== nLayer) fail('MANIFEST_FIELD', `layerMap must list all ${nLayer} source blocks`);
  const layerMap = m.layerMap as unknown[];
  layerMap.forEach((entry, i) => {
    const ok =
      entry === 'adapter' ||
      entry === 'raw' ||
      entry === 'dropped' ||
      (isObject(entry) && isObject(entry.replacedBy) && typeof entry.replacedBy.kind === 'string' && typeof entry.replacedBy.ref === 'string');
    if (!ok) fail('MANIFEST_FIELD', `layerMap[${i}] must be "adapter", "raw", "dropped" or {replacedBy: {kind, ref}}`);
  });
  const a = m.adapter;
  if (!isObject(a)) return fail('MANIFEST_FIELD', 'adapter is missing');
  if (!isIndexList(a.bottom, nLayer) || !isIndexList(a.top, nLayer)) fail('MANIFEST_FIELD', 'adapter.bottom/top must be lists of block indices');
  const adapterIdx = [...(a.bottom as number[]), ...(a.top as number[])];
  if (a.nAdapter !== adapterIdx.length) fail('MANIFEST_FIELD', 'adapter.nAdapter must equal the number of bottom + top blocks');
  layerMap.forEach((entry, i) => {
    if ((entry === 'adapter') !== adapterIdx.includes(i)) fail('MANIFEST_FIELD', `layerMap[${i}] disagrees with adapter.bottom/top`);
  });
  if (a.lora !== null && a.lora !== undefined) {
    if (!isObject(a.lora) || !isPosInt(a.lora.rank) || typeof a.lora.alpha !== 'number') fail('MANIFEST_FIELD', 'adapter.lora must be null or {rank, alpha}');
  }
  if (format === 'scaleot.emulator') {
    if (!isObject(m.compression)) fail('MANIFEST_FIELD', 'compression must be an object ({} when none)');
  } else if (!Array.isArray(m.tensors) || m.tensors.length === 0 || !m.tensors.every((t) => typeof t === 'string')) {
    fail('MANIFEST_FIELD', 'tensors must be a non-empty list of tensor names');
  }
  return { ...(m as unknown as Manifest), adapter: { ...(a as unknown as AdapterPlacement), lora: (a.lora as LoraSpec | undefined) ?? null } };
}

function isObject(v: unknown): v is Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isPosInt(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}
function isIndexList(v: unknown, n: number): boolean {
  return Array.isArray(v) && v.every((i) => Number.isInteger(i) && i >= 0 && i < n);
}
