import type { Logger } from '@scaleot/core';
import { Tokenizer } from '@scaleot/tokenizer';
import { loadModel, openModelCheckpoint } from '@scaleot/model';
import type * as tf from '@tensorflow/tfjs';
import { distillEmulator } from './distill.js';
import { buildEmulatorModel, layerDropMap, saveEmulator, type EmulatorSpec, type ShapedArray } from './emulator.js';
import { adapterLayout, isSandwich, selectKeptMiddle, type AdapterLayoutOptions, type LayerSelection } from './layout.js';
import { OffsiteError } from './OffsiteError.js';
import type { EmulatorManifest } from './manifest.js';
import { resolveTask, type TaskInput } from './taskInput.js';
import { DEFAULT_TRAIN, type TrainHyperParameters, type TrainResult, type TrainStepInfo } from './trainLoop.js';

export interface DistillSettings {
  /** The model owner's corpus (an LM task). Default 'sotu'. */
  corpus?: TaskInput;
  /** Weight of the normalised hidden-state MSE. Default 30. */
  mseWeight?: number;
  /** Optimisation settings; defaults: DEFAULT_TRAIN. */
  hyper?: Partial<TrainHyperParameters>;
}

export interface UniformEmulatorOptions {
  /** The full model (HF dir). */
  modelDir: string;
  /** Where the emulator artifact goes (must not exist or be empty, unless overwrite). */
  outDir: string;
  /** Adapter sandwich. Default N_a = 4, split evenly. */
  adapter?: AdapterLayoutOptions;
  /** Which middle blocks stay. Default: keep half of them at uniform positions. */
  selection?: LayerSelection;
  /** Distil the kept middle blocks on the owner's corpus first. Default: off. */
  distill?: DistillSettings;
  /** Data root for built-in corpus names. Default ./data. */
  dataRoot?: string;
  overwrite?: boolean;
  onStep?: (info: TrainStepInfo) => void;
  logger?: Logger;
}

export interface UniformEmulatorResult {
  manifest: EmulatorManifest;
  outDir: string;
  distill?: TrainResult;
}

/** Offsite-Tuning's uniform LayerDrop emulator, optionally distilled. */
export async function createUniformEmulator(opts: UniformEmulatorOptions): Promise<UniformEmulatorResult> {
  const { checkpoint: ckpt, family, config, names } = await openModelCheckpoint(opts.modelDir);
  let weights: Map<string, ShapedArray | tf.Tensor>;
  let spec: EmulatorSpec;
  let distillResult: TrainResult | undefined;
  try {
    const layout = adapterLayout(config.nLayer, opts.adapter);
    if (opts.distill && !isSandwich(layout)) {
      throw new OffsiteError('BAD_ADAPTER_LAYOUT', `distillation matches one middle stack between the bottom and top adapters; adapter blocks ${[...layout.bottom, ...layout.top].join(',')} split the middle into several segments: use a sandwich layout or no distillation`, { where: 'distill' });
    }
    const kept = selectKeptMiddle(layout, opts.selection);
    const { layerMap, placement } = layerDropMap(config.nLayer, opts.adapter ?? {}, kept);
    const dropped = layout.middle.filter((i) => !kept.includes(i));
    const distillHyper = opts.distill ? { ...DEFAULT_TRAIN, ...opts.distill.hyper } : undefined;
    spec = {
      method: 'uniform',
      parameters: {
        rule: opts.selection?.keepLayers ? 'keep-list' : opts.selection?.dropLayers ? 'drop-list' : 'uniform-index',
        keep: kept.length,
        keptMiddle: kept,
        droppedMiddle: dropped,
        distill: opts.distill ? { corpus: typeof opts.distill.corpus === 'object' ? opts.distill.corpus.spec.name : (opts.distill.corpus ?? 'sotu'), mseWeight: opts.distill.mseWeight ?? 30, hyper: distillHyper } : null,
      },
      layerMap,
      adapter: placement,
      compression: {},
    };
    weights = new Map();
    for (const [canonical, stored] of names) {
      const block = family.naming.blockIndex(canonical);
      if (block !== undefined && layerMap[block] === 'dropped') continue;
      weights.set(canonical, { shape: ckpt.info(stored).shape, data: await ckpt.readFloat32(stored) });
    }
    if (opts.distill) {
      const teacher = await loadModel(opts.modelDir);
      const flat = new Map([...weights].map(([n, w]) => [n, (w as ShapedArray).data]));
      const student = buildEmulatorModel(config, layerMap, flat, opts.outDir);
      try {
        const corpus = await resolveTask(opts.distill.corpus ?? 'sotu', opts.dataRoot);
        const tokenizer = await Tokenizer.fromDir(opts.modelDir);
        distillResult = await distillEmulator(teacher, student, { nBottom: placement.bottom.length, nTop: placement.top.length }, corpus, tokenizer, distillHyper!, {
          mseWeight: opts.distill.mseWeight,
          onStep: opts.onStep,
          logger: opts.logger,
        });
        const trained = new Map<string, ShapedArray>();
        for (const [n, v] of student.namedWeights()) trained.set(n, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
        weights = trained;
      } finally {
        teacher.dispose();
        student.dispose();
      }
    }
  } finally {
    await ckpt.close();
  }
  const manifest = await saveEmulator(opts.outDir, opts.modelDir, spec, weights, { overwrite: opts.overwrite });
  return { manifest, outDir: opts.outDir, distill: distillResult };
}
