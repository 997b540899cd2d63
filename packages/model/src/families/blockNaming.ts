import type { FamilyNaming } from './types.js';

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The naming every HF causal LM follows: blocks under `<layers>.<i>.`, a bare-model prefix that
 * checkpoints saved from the base class omit, and a head tied to the token embedding.
 */
export function blockNaming(spec: {
  /** Prefix of the whole base model, e.g. `transformer.` or `model.` (stripped in bare-model files). */
  basePrefix: string;
  /** Prefix of the block list inside the base model, e.g. `h` or `layers`. */
  layers: string;
  /** Names (without basePrefix) that identify a bare-model file: `wte.`, `h.`, `layers.` … */
  bareStarts: readonly string[];
  /** Canonical `[head, embedding]`. */
  tiedKeys: ReadonlyArray<readonly [string, string]>;
  /** Buffers HF registers (causal masks, rotary caches). */
  buffers?: RegExp;
}): FamilyNaming {
  const blockRe = new RegExp(`^${escape(spec.basePrefix)}${escape(spec.layers)}\\.(\\d+)\\.`);
  return {
    blockPrefix: (index) => `${spec.basePrefix}${spec.layers}.${index}`,
    blockIndex: (name) => {
      const m = blockRe.exec(name);
      return m ? Number(m[1]) : undefined;
    },
    canonicalName: (stored) => (spec.bareStarts.some((p) => stored.startsWith(p)) ? `${spec.basePrefix}${stored}` : stored),
    isBuffer: (canonical) => spec.buffers?.test(canonical) ?? false,
    tiedKeys: spec.tiedKeys,
  };
}
