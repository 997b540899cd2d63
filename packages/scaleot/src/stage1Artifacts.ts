import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sourceModelInfo, type SourceModelInfo } from '@scaleot/offsite';
import { harmonizerPrefix } from './Harmonizer.js';
import { SafetensorsFile } from '@scaleot/checkpoint';
import { ScaleotMethodError, Stage1MismatchError } from './ScaleotMethodError.js';

export const STAGE1_FORMAT = 'scaleot.stage1';
export const STAGE1_VERSION = 1;
export const STAGE1_MANIFEST = 'manifest.json';
export const STAGE1_SCORES = 'scores.json';
export const STAGE1_HARMONIZERS = 'harmonizers.safetensors';
export const STAGE1_LOG = 'stage1-log.jsonl';

/** Adapter sandwich and middle grouping stage 1 ran with (original block indices). */
export interface Stage1Layout {
  nLayer: number;
  nAdapter: number;
  bottom: number[];
  top: number[];
  middle: number[];
  groups: number[][];
}

/** `manifest.json` of a stage-1 artifact directory. */
export interface Stage1Manifest {
  format: typeof STAGE1_FORMAT;
  version: number;
  sourceModel: SourceModelInfo;
  layout: Stage1Layout;
  harmonizer: { kind: string; rank: number; blocks: number[] };
  /** Every setting of the run (see Stage1HyperParameters). */
  hyperParameters: Record<string, unknown>;
  steps: number;
  /** Final scores of the middle blocks, `{ "<index>": s }`. */
  scores: Record<string, number>;
  seconds: number;
  createdAt: string;
}

/** One block's entry in `scores.json` (the layer-importance plot's data). */
export interface BlockImportance {
  index: number;
  role: 'adapter' | 'middle';
  /** null for adapter blocks (never scored). */
  score: number | null;
  /** σ(score), the keep-probability; null for adapter blocks. */
  keepProbability: number | null;
  /** Position of the block's group; null for adapter blocks. */
  group: number | null;
}

export interface Stage1Artifacts {
  dir: string;
  manifest: Stage1Manifest;
  /** Length n_layer, by original block index; 0 for adapter blocks. */
  scores: number[];
  importance: BlockImportance[];
  /** `harmonizers.<i>.…` float32 tensors. */
  harmonizers: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Reads and validates a stage-1 artifact directory (manifest, scores, harmonizers). */
export async function readStage1(dir: string): Promise<Stage1Artifacts> {
  const root = resolve(dir);
  const manifestPath = join(root, STAGE1_MANIFEST);
  if (!existsSync(manifestPath)) {
    throw new ScaleotMethodError('STAGE1_MISSING', `no ${STAGE1_MANIFEST} here; pass the output directory of a completed stage-1 run`, { where: root });
  }
  let manifest: Stage1Manifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Stage1Manifest;
  } catch (cause) {
    throw new ScaleotMethodError('STAGE1_INVALID', 'manifest.json is not valid JSON', { where: manifestPath, cause });
  }
  validateStage1Manifest(manifest, manifestPath);
  const importance = await readImportance(join(root, STAGE1_SCORES));
  if (importance.length !== manifest.layout.nLayer) {
    throw new ScaleotMethodError('STAGE1_INVALID', `scores.json lists ${importance.length} blocks, the manifest's model has ${manifest.layout.nLayer}`, { where: join(root, STAGE1_SCORES) });
  }
  const scores = importance.map((b) => b.score ?? 0);
  for (const i of manifest.layout.middle) {
    if (importance[i].score === null) throw new ScaleotMethodError('STAGE1_INVALID', `scores.json has no score for middle block ${i}`, { where: join(root, STAGE1_SCORES) });
  }
  const harmonizers = await SafetensorsFile.readAllFloat32(join(root, STAGE1_HARMONIZERS)).catch((cause) => {
    throw new ScaleotMethodError('STAGE1_INVALID', `cannot read ${STAGE1_HARMONIZERS}: ${(cause as Error).message}`, { where: root, cause });
  });
  for (const i of manifest.harmonizer.blocks) {
    if (!harmonizers.has(`${harmonizerPrefix(i)}.down.weight`)) {
      throw new ScaleotMethodError('STAGE1_INVALID', `${STAGE1_HARMONIZERS} lacks the harmonizer of block ${i}`, { where: root });
    }
  }
  return { dir: root, manifest, scores, importance, harmonizers };
}

/** Throws Stage1MismatchError unless the artifacts were made from the model in `modelDir`. */
export async function checkStage1Source(stage1: Stage1Artifacts, modelDir: string): Promise<SourceModelInfo> {
  const source = await sourceModelInfo(resolve(modelDir));
  const made = stage1.manifest.sourceModel;
  if (made.nLayer !== source.nLayer || made.nEmbd !== source.nEmbd || made.modelType !== source.modelType) {
    throw new Stage1MismatchError(
      'STAGE1_SOURCE_MISMATCH',
      `stage 1 ran on a ${made.modelType} with ${made.nLayer} blocks of width ${made.nEmbd}, this model is a ${source.modelType} with ${source.nLayer} of width ${source.nEmbd}; run stage 1 on this model`,
      { where: stage1.dir },
    );
  }
  if (made.sha256 !== source.sha256) {
    throw new Stage1MismatchError(
      'STAGE1_SOURCE_MISMATCH',
      `stage 1 ran on model ${made.sha256.slice(0, 12)}…, this model is ${source.sha256.slice(0, 12)}…; its scores and harmonizers do not transfer: run stage 1 on this model`,
      { where: stage1.dir },
    );
  }
  return source;
}

async function readImportance(path: string): Promise<BlockImportance[]> {
  let value: { blocks?: unknown };
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new ScaleotMethodError('STAGE1_INVALID', 'scores.json is missing or not JSON', { where: path, cause });
  }
  const blocks = value.blocks;
  if (!Array.isArray(blocks) || !blocks.every((b, i) => b && b.index === i && (b.score === null || Number.isFinite(b.score)))) {
    throw new ScaleotMethodError('STAGE1_INVALID', 'scores.json must hold {blocks: [{index, role, score, …}]} with one entry per block, in order', { where: path });
  }
  return blocks as BlockImportance[];
}

function validateStage1Manifest(m: Stage1Manifest, where: string): void {
  const fail = (msg: string): never => {
    throw new ScaleotMethodError('STAGE1_INVALID', msg, { where });
  };
  if (typeof m !== 'object' || m === null) fail('manifest must be a JSON object');
  if (m.format !== STAGE1_FORMAT) fail(`format is ${JSON.stringify(m.format)}, expected "${STAGE1_FORMAT}"`);
  if (m.version !== STAGE1_VERSION) fail(`unknown stage-1 version ${JSON.stringify(m.version)}; this build reads version ${STAGE1_VERSION}`);
  const s = m.sourceModel;
  if (!s || typeof s.sha256 !== 'string' || !Number.isInteger(s.nLayer) || !Number.isInteger(s.nEmbd)) fail('sourceModel must hold sha256, modelType, nLayer, nEmbd');
  const l = m.layout;
  if (!l || l.nLayer !== s.nLayer || !Array.isArray(l.middle) || !Array.isArray(l.groups) || !Array.isArray(l.bottom) || !Array.isArray(l.top)) fail('layout must hold nLayer, bottom, top, middle and groups');
  if (!m.harmonizer || !Number.isInteger(m.harmonizer.rank) || !Array.isArray(m.harmonizer.blocks)) fail('harmonizer must hold kind, rank and blocks');
}

/** scores.json content from per-block scores. */
export function importanceTable(scores: readonly number[], layout: Stage1Layout): BlockImportance[] {
  const groupOf = new Map<number, number>();
  layout.groups.forEach((g, gi) => g.forEach((i) => groupOf.set(i, gi)));
  return scores.map((s, index) => {
    const middle = groupOf.has(index);
    return {
      index,
      role: middle ? 'middle' : 'adapter',
      score: middle ? s : null,
      keepProbability: middle ? 1 / (1 + Math.exp(-s)) : null,
      group: middle ? groupOf.get(index)! : null,
    };
  });
}
