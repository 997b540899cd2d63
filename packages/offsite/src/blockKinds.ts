import type { BlockModule, ModelConfig } from '@scaleot/model';
import { OffsiteError } from './OffsiteError.js';

/** What a replacement-module factory gets when an emulator is loaded. */
export interface BlockKindContext {
  /** Original index of the block being replaced. */
  index: number;
  /** The `ref` of the layer map entry (the prefix of the module's tensors, by convention). */
  ref: string;
  config: ModelConfig;
  /** Every tensor of the emulator's weights file, float32, by name. */
  weights: Map<string, Float32Array>;
}

export type BlockKindFactory = (ctx: BlockKindContext) => BlockModule;

const factories = new Map<string, BlockKindFactory>();
const providers = new Map<string, string>();

/**
 * Registers a module kind that emulators may use in place of an original block (`{replacedBy:
 * {kind, ref}}` in the layer map). The ScaleOT package registers its harmonizer this way; the module's
 * `namedVariables()` names are what get stored in the emulator's weights file.
 */
export function registerBlockKind(kind: string, factory: BlockKindFactory, options: { module?: string } = {}): void {
  factories.set(kind, factory);
  if (options.module) providers.set(kind, options.module);
}

/**
 * Modules (file URLs) whose import registers the block kinds known here: a worker thread that loads
 * emulators (a data-parallel replica) imports them first, since registrations are per thread.
 */
export function blockKindModules(): string[] {
  return [...new Set(providers.values())];
}

export function blockKindFactory(kind: string, where: string): BlockKindFactory {
  const f = factories.get(kind);
  if (!f) {
    throw new OffsiteError(
      'UNKNOWN_BLOCK_KIND',
      `the emulator replaces a block by a "${kind}" module, which no loaded package provides (registered: ${[...factories.keys()].join(', ') || 'none'}); import the package that registers it`,
      { where },
    );
  }
  return f;
}
