// Data-parallel replicas of an emulator being tuned (loaded by DataParallelTrainer's threads from dist).
import type { CausalLM } from '@scaleot/model';
import type * as tf from '@tensorflow/tfjs';
import { loadEmulator } from './emulator.js';
import type { LoraSpec } from './manifest.js';
import { trainableAdapterVariables, wrapWithLora } from './tuneAdapter.js';

export interface EmulatorReplicaArgs {
  emulatorDir: string;
  /** Adapter block indices (what trains). */
  indices: number[];
  lora: LoraSpec | null;
  seed: number;
  /** Every weight of the emulator trains (the audit's attackers), not only the adapter blocks. Default false. */
  allWeights?: boolean;
  /** Modules registering the block kinds the emulator may use (blockKindModules() of the caller). */
  kindModules: string[];
}

/** The emulator as the caller loaded it (frozen weights from disk; the trained ones arrive by loadTrainable). */
export async function buildEmulatorReplica({ args }: { args: unknown }): Promise<CausalLM> {
  const a = args as EmulatorReplicaArgs;
  for (const m of a.kindModules) await import(m);
  const emu = await loadEmulator(a.emulatorDir);
  if (a.lora) wrapWithLora(emu.model, a.indices, a.lora, a.seed);
  return emu.model;
}

export function emulatorReplicaVariables(model: CausalLM, args: unknown): Map<string, tf.Variable> {
  const a = args as EmulatorReplicaArgs;
  return a.allWeights ? new Map(model.namedWeights()) : trainableAdapterVariables(model, a.indices);
}
