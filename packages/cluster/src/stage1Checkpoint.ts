import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeArtifactDir } from '@scaleot/offsite';
import { encodeF32Safetensors, readAllFloat32, type F32Tensor, type Harmonizer, type HarmonizerOptimizer, type Stage1StepLog } from '@scaleot/scaleot';
import * as tf from '@tensorflow/tfjs';
import { ClusterError } from './ClusterError.js';

const STATE_JSON = 'state.json';
const STATE_TENSORS = 'state.safetensors';
const FORMAT = 'scaleot.cluster-stage1-state';

/** Everything a restarted coordinator needs to continue bit-identically after `step` completed rounds. */
export interface ClusterStage1State {
  step: number;
  scores: number[];
  rng: { mask: number[]; train: number[]; val: number[] };
  log: Stage1StepLog[];
  seconds: number;
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, STATE_JSON));
}

/** Writes the whole checkpoint directory atomically (a crash leaves the previous round's). */
export async function saveCheckpoint(dir: string, fingerprint: unknown, state: ClusterStage1State, harmonizers: ReadonlyMap<number, Harmonizer>, optimizer: HarmonizerOptimizer): Promise<void> {
  const tensors: F32Tensor[] = [];
  const optimizerSteps: Record<string, number> = {};
  for (const [i, h] of harmonizers) {
    const st = optimizer.optimizers.get(i)!.getState();
    optimizerSteps[String(i)] = st.step;
    for (const [name, v] of h.namedVariables()) {
      tensors.push({ name: `param/${name}`, shape: v.shape.slice(), data: (await v.data()) as Float32Array });
      tensors.push({ name: `adam.m/${name}`, shape: v.shape.slice(), data: st.m[name] });
      tensors.push({ name: `adam.v/${name}`, shape: v.shape.slice(), data: st.v[name] });
    }
  }
  const json = { format: FORMAT, version: 1, fingerprint, ...state, optimizerSteps, savedAt: new Date().toISOString() };
  await writeArtifactDir(
    dir,
    [
      { name: STATE_JSON, chunks: [Buffer.from(`${JSON.stringify(json)}\n`)] },
      { name: STATE_TENSORS, chunks: encodeF32Safetensors(tensors) },
    ],
    { overwrite: true },
  );
}

/** Restores harmonizers and optimizer moments in place; returns the saved loop state. */
export async function loadCheckpoint(dir: string, fingerprint: unknown, harmonizers: ReadonlyMap<number, Harmonizer>, optimizer: HarmonizerOptimizer): Promise<ClusterStage1State> {
  const path = join(dir, STATE_JSON);
  let json: ClusterStage1State & { format?: string; version?: number; fingerprint: unknown; optimizerSteps: Record<string, number> };
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new ClusterError('BAD_CHECKPOINT', 'the stage-1 checkpoint is unreadable; delete it to start over', { where: path, cause });
  }
  if (json.format !== FORMAT || json.version !== 1) throw new ClusterError('BAD_CHECKPOINT', `not a ${FORMAT} version-1 checkpoint`, { where: path });
  if (JSON.stringify(json.fingerprint) !== JSON.stringify(fingerprint)) {
    throw new ClusterError('CHECKPOINT_MISMATCH', 'the checkpoint was written by a run with another model, corpus or settings; use the same ones, another outDir, or resume: false', { where: path });
  }
  const tensors = await readAllFloat32(join(dir, STATE_TENSORS));
  for (const [i, h] of harmonizers) {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, variable] of h.namedVariables()) {
      const p = tensors.get(`param/${name}`);
      const mm = tensors.get(`adam.m/${name}`);
      const vv = tensors.get(`adam.v/${name}`);
      if (!p || !mm || !vv) throw new ClusterError('BAD_CHECKPOINT', `the checkpoint lacks "${name}"`, { where: dir });
      tf.tidy(() => variable.assign(tf.tensor(p.data, variable.shape, 'float32')));
      m[name] = mm.data;
      v[name] = vv.data;
    }
    optimizer.optimizers.get(i)!.setState({ step: json.optimizerSteps[String(i)] ?? 0, m, v });
  }
  return { step: json.step, scores: json.scores, rng: json.rng, log: json.log, seconds: json.seconds };
}
