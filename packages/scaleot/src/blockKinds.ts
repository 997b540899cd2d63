import { expectedParameters, familyOf, ParamFactory, type BlockModule } from '@scaleot/model';
import { registerBlockKind, type BlockKindContext } from '@scaleot/offsite';
import { Harmonizer, HARMONIZER_KIND, harmonizerPrefix } from './Harmonizer.js';
import { ScaleotMethodError } from './ScaleotMethodError.js';
import { multiplyFactors } from './svd.js';

/** Layer-map kind of a raw block whose SRC'd matrices are stored as two factors. */
export const SRC_FACTORS_KIND = 'scaleot.src-factors';

/** Names of the two SRC factors of a stored [rows, cols] weight: `<name>_left` [rows, r] = U_r·Σ_r and `<name>_right` [r, cols] = V_rᵀ. */
export function srcFactorNames(weightName: string): { left: string; right: string } {
  return { left: `${weightName}_left`, right: `${weightName}_right` };
}

function harmonizerFromContext(ctx: BlockKindContext): Harmonizer {
  if (ctx.ref !== harmonizerPrefix(ctx.index)) {
    throw new ScaleotMethodError('BAD_EMULATOR', `block ${ctx.index}'s harmonizer must live under "${harmonizerPrefix(ctx.index)}", the layer map says "${ctx.ref}"`, { where: ctx.ref });
  }
  return new Harmonizer(ctx.index, ctx.config.hiddenSize, { weights: ctx.weights, eps: ctx.config.normEps });
}

/** An original block of the family whose factored matrices are multiplied back (float64 accumulation) into dense weights. */
function srcBlockFromContext(ctx: BlockKindContext): BlockModule {
  const family = familyOf(ctx.config);
  const shapes = new Map(expectedParameters(ctx.config).map((p) => [p.name, p.shape]));
  const dense = new Map<string, Float32Array>();
  for (const [name, data] of ctx.weights) {
    if (family.naming.blockIndex(name) !== ctx.index || name.endsWith('_right')) continue;
    if (!name.endsWith('_left')) {
      dense.set(name, data);
      continue;
    }
    const base = name.slice(0, -'_left'.length);
    const right = ctx.weights.get(srcFactorNames(base).right);
    if (!right) throw new ScaleotMethodError('MISSING_TENSOR', `"${name}" has no matching "${srcFactorNames(base).right}"`, { where: name });
    const shape = shapes.get(base);
    if (!shape || shape.length !== 2) throw new ScaleotMethodError('BAD_EMULATOR', `"${base}" is not a matrix of a ${family.name} block`, { where: base });
    const [rows, cols] = shape;
    const r = data.length / rows;
    if (!Number.isInteger(r) || right.length !== r * cols) throw new ScaleotMethodError('SHAPE_MISMATCH', `factors of "${base}" do not multiply to [${rows}, ${cols}]`, { where: base });
    dense.set(base, multiplyFactors(data, right, rows, r, cols));
  }
  return family.createBlock(ctx.index, ctx.config, new ParamFactory(dense, 0, true));
}

let registered = false;

/** Lets offsite's loadEmulator build harmonizers and factored SRC blocks (idempotent; index.ts calls it). */
export function registerScaleotBlockKinds(): void {
  if (registered) return;
  registered = true;
  // The package entry registers them on import: what a replica thread imports to know these kinds.
  const module = new URL('./index.js', import.meta.url).href;
  registerBlockKind(HARMONIZER_KIND, harmonizerFromContext, { module });
  registerBlockKind(SRC_FACTORS_KIND, srcBlockFromContext, { module });
}
