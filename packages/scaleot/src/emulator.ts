import { resolve } from 'node:path';
import { familyOf, openModelCheckpoint, type FamilyNaming, type ModelConfig } from '@scaleot/model';
import { saveEmulator, type TaskInput, type EmulatorManifest, type EmulatorSpec, type LayerAssignment, type ShapedArray } from '@scaleot/offsite';
import { runGradot, type GradotMeasurement, type GradotOptions, type SelectionCriterion } from './gradotSelect.js';
import { HARMONIZER_KIND, harmonizerPrefix } from './Harmonizer.js';
import { rawPerGroup } from './importance.js';
import { SRC_FACTORS_KIND, srcFactorNames } from './blockKinds.js';
import { ScaleotMethodError, Stage1MismatchError } from './ScaleotMethodError.js';
import { checkStage1Source, readStage1, type Stage1Artifacts } from './stage1Artifacts.js';
import { stage1Layout } from './stage1.js';
import { lowRankApproximation, lowRankFactors, multiplyFactors } from './svd.js';

/**
 * How the lowest-scored blocks are treated: 'replace' (ScaleOT: by their harmonizers), 'drop' (dynamic
 * LayerDrop ablation: removed), 'uniform-replace' (ablation: harmonizers at evenly spaced positions,
 * ignoring the scores).
 */
export type EmulatorMode = 'replace' | 'drop' | 'uniform-replace';

/** SRC's default targets: the family's attention projections (GPT-2 c_attn, c_proj; OPT/LLaMA q, k, v, o). */
export function defaultSrcTargets(config: ModelConfig): string[] {
  return familyOf(config)
    .linearTargets(config)
    .filter((t) => t.part === 'attention')
    .map((t) => t.name);
}

export interface ScaleotEmulatorOptions {
  /** The full model (HF dir). */
  modelDir: string;
  /** Stage-1 artifacts of that model. Needed unless alpha = 0 (then the scores are not used). */
  stage1Dir?: string;
  /** Where the emulator artifact goes (offsite's format; must not exist or be empty, unless overwrite). */
  outDir: string;
  /** N_a. Default: stage 1's (else 4). */
  nAdapter?: number;
  /** Adapter blocks at the bottom. Default floor(N_a / 2). */
  bottom?: number;
  /**
   * Explicit adapter blocks at any depths (CRaSh-style, e.g. [0, 4, 7, 11]) instead of the (N_a, bottom)
   * sandwich; the groups are cut inside each run of middle blocks between adapters. Default: stage 1's
   * adapter blocks when neither this nor nAdapter is given, else the sandwich.
   */
  adapterBlocks?: readonly number[];
  /** α ∈ [0, 1): per group of `groupSize` middle blocks, round(α·groupSize) are replaced (or dropped). Default 0.5. */
  alpha?: number;
  /** β ∈ [0, 1): fraction of rank removed from the attention projections of raw middle blocks. Default 0. */
  beta?: number;
  /** Default 'replace'. */
  mode?: EmulatorMode;
  /** Middle-block group size of the selection. Default: stage 1's (else 4). */
  groupSize?: number;
  /** SRC storage: 'dense' (the product, under the original names) or 'factors' (U_r·Σ_r and V_rᵀ). Default 'dense'. */
  srcStorage?: 'dense' | 'factors';
  /** Block-relative module names SRC compresses (`<name>.weight`). Default: the family's attention projections. */
  srcTargets?: readonly string[];
  /**
   * Which criterion picks the compressed blocks (per group, round(α·|group|) of them, as always):
   * 'importance' (stage 1's scores), 'gradot' or 'gradot-greedy' (measured on the owner's corpus: see
   * gradotSelect.ts; the manifest records its per-block numbers and rounds). Not with mode
   * 'uniform-replace'. Default 'importance'.
   */
  select?: SelectionCriterion;
  /** GradOT's measurement settings and the owner's corpus it reads (train split). Default: GradotOptions' defaults, 'sotu'. */
  gradot?: GradotOptions & { corpus?: TaskInput; dataRoot?: string; maxDocuments?: number; stream?: Int32Array };
  overwrite?: boolean;
}

export interface EmulatorPlan {
  /** Original indices. */
  middle: number[];
  raw: number[];
  replaced: number[];
  dropped: number[];
  groups: number[][];
}

export interface ScaleotEmulatorResult {
  outDir: string;
  manifest: EmulatorManifest;
  plan: EmulatorPlan;
  /** The GradOT measurement when `select` was 'gradot'. */
  gradot?: GradotMeasurement;
}

/** Checks α or β: a finite number in [0, 1). */
export function checkFraction(name: 'alpha' | 'beta', value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value >= 1) {
    throw new ScaleotMethodError(name === 'alpha' ? 'BAD_ALPHA' : 'BAD_BETA', `${name === 'alpha' ? 'α' : 'β'} must be a number in [0, 1), got ${JSON.stringify(value)}`, { where: name });
  }
  return value;
}

/**
 * Which middle blocks stay raw, get their harmonizer, or are dropped. Per group: the round(α·|group|)
 * lowest-scored blocks (ties: lower index first) are replaced ('replace') or dropped ('drop');
 * 'uniform-replace' replaces the same total count at evenly spaced positions floor((j+1)·n/k) − 1.
 */
export function planEmulator(opts: { scores: readonly number[]; middle: readonly number[]; alpha: number; groupSize?: number; mode?: EmulatorMode; groups?: readonly (readonly number[])[] }): EmulatorPlan {
  const alpha = checkFraction('alpha', opts.alpha);
  const groupSize = opts.groupSize ?? 4;
  if (opts.middle.length === 0) throw new ScaleotMethodError('NO_MIDDLE_BLOCKS', 'the adapter leaves no middle block to compress; use fewer adapter blocks', { where: 'emulator plan' });
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new ScaleotMethodError('BAD_GROUP_SIZE', `group size must be a positive integer, got ${groupSize}`, { where: 'emulator plan' });
  const middle = [...opts.middle];
  const groups: number[][] = [];
  if (opts.groups) {
    const flat = opts.groups.flat();
    if (flat.length !== middle.length || flat.some((i, k) => i !== middle[k])) {
      throw new ScaleotMethodError('BAD_GROUP_SIZE', `the groups ${JSON.stringify(opts.groups)} do not partition the middle blocks ${middle.join(',')} in order`, { where: 'emulator plan' });
    }
    groups.push(...opts.groups.map((g) => [...g]));
  } else {
    for (let i = 0; i < middle.length; i += groupSize) groups.push(middle.slice(i, i + groupSize));
  }
  const perGroup = groups.map((g) => rawPerGroup(g.length, alpha));
  const chosen = new Set<number>();
  if ((opts.mode ?? 'replace') === 'uniform-replace') {
    const k = perGroup.reduce((a, b) => a + b, 0);
    for (let j = 0; j < k; j++) chosen.add(middle[Math.floor(((j + 1) * middle.length) / k) - 1]);
  } else {
    groups.forEach((g, gi) => {
      const order = [...g].sort((a, b) => opts.scores[a] - opts.scores[b] || a - b);
      order.slice(0, perGroup[gi]).forEach((i) => chosen.add(i));
    });
  }
  const raw = middle.filter((i) => !chosen.has(i));
  const picked = middle.filter((i) => chosen.has(i));
  return opts.mode === 'drop' ? { middle, raw, replaced: [], dropped: picked, groups } : { middle, raw, replaced: picked, dropped: [], groups };
}

/**
 * ScaleOT stage 2: an emulator artifact for (N_a, α, β) from the full model and its stage-1 artifacts,
 * in offsite's emulator format (method 'scaleot'; tuning, plug-in and reports use it unchanged).
 * β = 0 copies every kept weight bit for bit (no SVD runs); α = 0 keeps every middle block raw.
 * Nothing is written when an input is invalid.
 */
export async function buildScaleotEmulator(opts: ScaleotEmulatorOptions): Promise<ScaleotEmulatorResult> {
  const alpha = checkFraction('alpha', opts.alpha ?? 0.5);
  const beta = checkFraction('beta', opts.beta ?? 0);
  const mode = opts.mode ?? 'replace';
  if (!['replace', 'drop', 'uniform-replace'].includes(mode)) throw new ScaleotMethodError('BAD_OPTION', `mode must be replace, drop or uniform-replace, got ${JSON.stringify(mode)}`, { where: 'mode' });
  const storage = opts.srcStorage ?? 'dense';
  if (storage !== 'dense' && storage !== 'factors') throw new ScaleotMethodError('BAD_OPTION', `srcStorage must be dense or factors, got ${JSON.stringify(storage)}`, { where: 'srcStorage' });
  const select = opts.select ?? 'importance';
  if (!['importance', 'gradot', 'gradot-greedy'].includes(select)) throw new ScaleotMethodError('BAD_OPTION', `select must be importance, gradot or gradot-greedy, got ${JSON.stringify(select)}`, { where: 'select' });
  if (select !== 'importance' && mode === 'uniform-replace') throw new ScaleotMethodError('BAD_OPTION', 'uniform-replace places harmonizers at fixed positions; it takes no selection criterion (use select importance)', { where: 'select' });
  const needsStage1 = alpha > 0;
  if (needsStage1 && !opts.stage1Dir) throw new ScaleotMethodError('STAGE1_MISSING', 'α > 0 needs the stage-1 artifacts (scores and harmonizers); pass stage1Dir', { where: 'stage1Dir' });
  const stage1: Stage1Artifacts | undefined = opts.stage1Dir ? await readStage1(opts.stage1Dir) : undefined;
  if (stage1) await checkStage1Source(stage1, opts.modelDir);

  const { checkpoint: ckpt, config, family, names } = await openModelCheckpoint(opts.modelDir);
  const naming = family.naming;
  const targets = [...(opts.srcTargets ?? defaultSrcTargets(config))];
  let spec: EmulatorSpec;
  let plan: EmulatorPlan;
  let gradot: GradotMeasurement | undefined;
  const weights = new Map<string, ShapedArray>();
  try {
    const s1 = stage1?.manifest.layout;
    // A stage 1 with adapters at several depths gives its blocks as the default layout.
    const s1Blocks = s1 && !stage1LayoutIsSandwich(s1) ? [...s1.bottom, ...s1.top] : undefined;
    const adapterBlocks = opts.adapterBlocks ?? (opts.nAdapter === undefined && opts.bottom === undefined ? s1Blocks : undefined);
    const nAdapter = adapterBlocks?.length ?? opts.nAdapter ?? s1?.nAdapter ?? 4;
    const bottom = opts.bottom ?? Math.floor(nAdapter / 2);
    const s1GroupSize = stage1?.manifest.hyperParameters.groupSize;
    const groupSize = opts.groupSize ?? (typeof s1GroupSize === 'number' ? s1GroupSize : undefined) ?? s1?.groups[0]?.length ?? 4;
    const layout = stage1Layout(config.nLayer, nAdapter, bottom, groupSize, adapterBlocks);
    if (stage1 && needsStage1) {
      const known = new Set(stage1.manifest.layout.middle);
      const unknown = layout.middle.filter((i) => !known.has(i));
      if (unknown.length > 0) {
        throw new Stage1MismatchError(
          'STAGE1_LAYOUT_MISMATCH',
          `middle block${unknown.length > 1 ? 's' : ''} ${unknown.join(',')} had no harmonizer or score in stage 1 (its middle blocks: ${stage1.manifest.layout.middle.join(',')}); use N_a ≥ ${stage1.manifest.layout.nAdapter} or rerun stage 1`,
          { where: opts.stage1Dir },
        );
      }
    }
    let scores = stage1?.scores ?? new Array<number>(config.nLayer).fill(0);
    if (select !== 'importance' && alpha > 0) {
      const { corpus, dataRoot, maxDocuments, stream, ...settings } = opts.gradot ?? {};
      gradot = await runGradot({
        ...settings,
        modelDir: opts.modelDir,
        adapterBlocks: [...layout.bottom, ...layout.top],
        middle: layout.middle,
        stage1,
        standIn: mode === 'drop' ? 'identity' : 'harmonizer',
        corpus,
        dataRoot,
        maxDocuments,
        stream,
        greedy: select === 'gradot-greedy' ? { groups: layout.groups, quota: layout.groups.map((g) => rawPerGroup(g.length, alpha)) } : undefined,
      });
      scores = new Array<number>(config.nLayer).fill(0);
      for (const b of gradot.blocks) scores[b.index] = b.keepScore;
      // Greedy: the chosen blocks rank below every other, in the order they were chosen.
      gradot.rounds?.forEach((r, k) => (scores[r.chosen] = -1e9 + k));
    }
    plan = planEmulator({ scores, middle: layout.middle, alpha, groupSize, mode, groups: layout.groups });
    const adapterIdx = new Set([...layout.bottom, ...layout.top]);
    const layerMap: LayerAssignment[] = [];
    for (let i = 0; i < config.nLayer; i++) {
      if (adapterIdx.has(i)) layerMap.push('adapter');
      else if (plan.dropped.includes(i)) layerMap.push('dropped');
      else if (plan.replaced.includes(i)) layerMap.push({ replacedBy: { kind: HARMONIZER_KIND, ref: harmonizerPrefix(i) } });
      else if (beta > 0 && storage === 'factors') layerMap.push({ replacedBy: { kind: SRC_FACTORS_KIND, ref: naming.blockPrefix(i) } });
      else layerMap.push('raw');
    }
    for (const [canonical, stored] of names) {
      const block = naming.blockIndex(canonical);
      const entry = block === undefined ? undefined : layerMap[block];
      // Dropped and harmonizer-replaced blocks never leave the owner.
      if (entry === 'dropped' || (typeof entry === 'object' && entry.replacedBy.kind === HARMONIZER_KIND)) continue;
      weights.set(canonical, { shape: ckpt.info(stored).shape.slice(), data: await ckpt.readFloat32(stored) });
    }
    for (const i of plan.replaced) {
      for (const [name, t] of stage1!.harmonizers) if (name.startsWith(`${harmonizerPrefix(i)}.`)) weights.set(name, { shape: t.shape.slice(), data: t.data });
    }
    const src = beta > 0 ? compressRawMiddle(weights, naming, plan.raw, targets, beta, storage) : { ranks: {}, relativeError: {} };
    spec = {
      method: 'scaleot',
      parameters: {
        alpha,
        beta,
        mode,
        nAdapter,
        adapterBlocks: [...layout.bottom, ...layout.top],
        groupSize,
        groups: plan.groups,
        middle: plan.middle,
        rawMiddle: plan.raw,
        replacedMiddle: plan.replaced,
        droppedMiddle: plan.dropped,
        scores: Object.fromEntries(plan.middle.map((i) => [String(i), stage1?.scores[i] ?? null])),
        selection: gradot ?? { criterion: select },
        stage1: stage1 ? { dir: stage1.dir, steps: stage1.manifest.steps, rank: stage1.manifest.harmonizer.rank, createdAt: stage1.manifest.createdAt, alignWeight: stage1.manifest.hyperParameters.alignWeight ?? null } : null,
      },
      layerMap,
      adapter: { nAdapter: adapterIdx.size, bottom: layout.bottom, top: layout.top, lora: null },
      compression: { src: { beta, storage, targets, rankRule: 'round((1 − β)·min(d_in, d_out))', ranks: src.ranks, relativeError: src.relativeError } },
    };
  } finally {
    await ckpt.close();
  }
  const manifest = await saveEmulator(resolve(opts.outDir), opts.modelDir, spec, weights, { overwrite: opts.overwrite });
  return { outDir: resolve(opts.outDir), manifest, plan, gradot };
}

/** True when a stage-1 layout's middle is one run of consecutive blocks (a sandwich). */
function stage1LayoutIsSandwich(layout: { middle: readonly number[] }): boolean {
  return layout.middle.every((i, k) => k === 0 || layout.middle[k - 1] === i - 1);
}

/** SRC rank for a [rows, cols] matrix. */
export function srcRank(dIn: number, dOut: number, beta: number): number {
  return Math.max(1, Math.round((1 - checkFraction('beta', beta)) * Math.min(dIn, dOut)));
}

/**
 * Selective Rank Compression in place on `weights`: every target of every block in `blocks` becomes its
 * truncated SVD (dense product under the same name, or two factors under `<name>_left` / `<name>_right`).
 * The SVD of W and of its transpose truncate alike, so the stored layout (Conv1D [in, out] or nn.Linear
 * [out, in]) does not matter: the factors of a stored [rows, cols] matrix are left [rows, r], right [r, cols].
 */
export function compressRawMiddle(
  weights: Map<string, ShapedArray>,
  naming: Pick<FamilyNaming, 'blockPrefix'>,
  blocks: readonly number[],
  targets: readonly string[],
  beta: number,
  storage: 'dense' | 'factors',
): { ranks: Record<string, number>; relativeError: Record<string, number> } {
  const ranks: Record<string, number> = {};
  const relativeError: Record<string, number> = {};
  for (const i of blocks) {
    for (const target of targets) {
      const name = `${naming.blockPrefix(i)}.${target}.weight`;
      const w = weights.get(name);
      if (!w || w.shape.length !== 2) throw new ScaleotMethodError('BAD_OPTION', `SRC target "${name}" is not a matrix of this model`, { where: 'srcTargets' });
      const [dIn, dOut] = w.shape;
      const r = srcRank(dIn, dOut, beta);
      ranks[name] = r;
      let approx: Float32Array;
      if (storage === 'factors') {
        const { left, right } = lowRankFactors(w.data, dIn, dOut, r);
        const names = srcFactorNames(name);
        weights.delete(name);
        weights.set(names.left, { shape: [dIn, r], data: left });
        weights.set(names.right, { shape: [r, dOut], data: right });
        approx = multiplyFactors(left, right, dIn, r, dOut);
      } else {
        approx = Float32Array.from(lowRankApproximation(w.data, dIn, dOut, r));
        weights.set(name, { shape: [dIn, dOut], data: approx });
      }
      let num = 0;
      let den = 0;
      for (let k = 0; k < approx.length; k++) {
        num += (w.data[k] - approx[k]) ** 2;
        den += w.data[k] ** 2;
      }
      relativeError[name] = den > 0 ? Math.sqrt(num / den) : 0;
    }
  }
  return { ranks, relativeError };
}
