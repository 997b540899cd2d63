import { Gpt2Block, ParamFactory, type GPT2Config } from '@scaleot/model';
import { registerBlockKind, type BlockKindContext } from '@scaleot/offsite';
import { Harmonizer, HARMONIZER_KIND, harmonizerPrefix } from './Harmonizer.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';
import { multiplyFactors } from './svd.js';

/** Layer-map kind of a raw block whose SRC'd matrices are stored as two factors. */
export const SRC_FACTORS_KIND = 'scaleot.src-factors';

/** Names of the two SRC factors of a weight: `<name>_left` [in, r] = U_r·Σ_r and `<name>_right` [r, out] = V_rᵀ. */
export function srcFactorNames(weightName: string): { left: string; right: string } {
  return { left: `${weightName}_left`, right: `${weightName}_right` };
}

function harmonizerFromContext(ctx: BlockKindContext): Harmonizer {
  if (ctx.ref !== harmonizerPrefix(ctx.index)) {
    throw new ScaleotMethodError('BAD_EMULATOR', `block ${ctx.index}'s harmonizer must live under "${harmonizerPrefix(ctx.index)}", the layer map says "${ctx.ref}"`, { where: ctx.ref });
  }
  return new Harmonizer(ctx.index, ctx.config.nEmbd, { weights: ctx.weights, eps: ctx.config.layerNormEpsilon });
}

/** A GPT-2 block whose factored matrices are multiplied back (float64 accumulation) into dense weights. */
function srcBlockFromContext(ctx: BlockKindContext): Gpt2Block {
  const prefix = `transformer.h.${ctx.index}.`;
  const dense = new Map<string, Float32Array>();
  for (const [name, data] of ctx.weights) {
    if (!name.startsWith(prefix) || name.endsWith('_right')) continue;
    if (!name.endsWith('_left')) {
      dense.set(name, data);
      continue;
    }
    const base = name.slice(0, -'_left'.length);
    const right = ctx.weights.get(srcFactorNames(base).right);
    if (!right) throw new ScaleotMethodError('MISSING_TENSOR', `"${name}" has no matching "${srcFactorNames(base).right}"`, { where: name });
    const [dIn, dOut] = factorShape(ctx.config as GPT2Config, base.slice(prefix.length));
    const r = data.length / dIn;
    if (!Number.isInteger(r) || right.length !== r * dOut) throw new ScaleotMethodError('SHAPE_MISMATCH', `factors of "${base}" do not multiply to [${dIn}, ${dOut}]`, { where: base });
    dense.set(base, multiplyFactors(data, right, dIn, r, dOut));
  }
  return new Gpt2Block(ctx.index, ctx.config as GPT2Config, new ParamFactory(dense, 0, true));
}

function factorShape(config: GPT2Config, local: string): [number, number] {
  const d = config.nEmbd;
  const inner = config.nInner;
  const shapes: Record<string, [number, number]> = {
    'attn.c_attn.weight': [d, 3 * d],
    'attn.c_proj.weight': [d, d],
    'mlp.c_fc.weight': [d, inner],
    'mlp.c_proj.weight': [inner, d],
  };
  const s = shapes[local];
  if (!s) throw new ScaleotMethodError('BAD_EMULATOR', `no factored layout is known for "${local}"`, { where: local });
  return s;
}

let registered = false;

/** Lets offsite's loadEmulator build harmonizers and factored SRC blocks (idempotent; index.ts calls it). */
export function registerScaleotBlockKinds(): void {
  if (registered) return;
  registered = true;
  registerBlockKind(HARMONIZER_KIND, harmonizerFromContext);
  registerBlockKind(SRC_FACTORS_KIND, srcBlockFromContext);
}
