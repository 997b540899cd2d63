import { OffsiteError } from './OffsiteError.js';

/** Which blocks are the adapter: a sandwich (nAdapter, bottom) or explicit blocks at any depths (`blocks`). */
export interface AdapterLayoutOptions {
  /** N_a, the number of adapter blocks in all. Default: 4 (2 bottom + 2 top); with `blocks`, its length (must agree). */
  nAdapter?: number;
  /** How many of them sit at the bottom. Default: floor(nAdapter / 2); the rest go to the top. Not with `blocks`. */
  bottom?: number;
  /**
   * Explicit adapter blocks (original indices, any depths: CRaSh-style placement such as 0,4,7,11 of a
   * 12-block model). Default: the sandwich. The middle is every other block; `bottom` of the layout holds
   * the adapter blocks 0…b−1 below the first middle block and `top` all the others (tuning and plug-in
   * use their union).
   */
  blocks?: readonly number[];
}

export interface AdapterLayout {
  nLayer: number;
  /** Original indices of the bottom adapter blocks, ascending. */
  bottom: number[];
  /** Original indices of the top adapter blocks, ascending. */
  top: number[];
  /** Original indices of the blocks between them (the ones an emulator compresses). */
  middle: number[];
}

/** True when the layout's adapter blocks are a sandwich (0…b−1 and the last t blocks): one middle segment. */
export function isSandwich(layout: AdapterLayout): boolean {
  return layout.middle.every((i, k) => k === 0 || layout.middle[k - 1] === i - 1);
}

/** The sandwich split of an `nLayer`-block model; throws when it leaves no middle block. */
export function adapterLayout(nLayer: number, options: AdapterLayoutOptions = {}): AdapterLayout {
  if (options.blocks !== undefined) return explicitLayout(nLayer, options);
  const nAdapter = options.nAdapter ?? 4;
  const bottomCount = options.bottom ?? Math.floor(nAdapter / 2);
  const where = 'adapter layout';
  if (!Number.isInteger(nAdapter) || nAdapter < 1) {
    throw new OffsiteError('BAD_ADAPTER_LAYOUT', `N_a must be a positive integer, got ${nAdapter}`, { where });
  }
  if (!Number.isInteger(bottomCount) || bottomCount < 0 || bottomCount > nAdapter) {
    throw new OffsiteError('BAD_ADAPTER_LAYOUT', `the bottom split must be an integer in [0, N_a=${nAdapter}], got ${bottomCount}`, { where });
  }
  if (nAdapter >= nLayer) {
    throw new OffsiteError(
      'ADAPTER_TOO_LARGE',
      `N_a=${nAdapter} adapter blocks leave no middle block in a ${nLayer}-block model; choose N_a ≤ ${nLayer - 1}`,
      { where },
    );
  }
  const topCount = nAdapter - bottomCount;
  const bottom = range(0, bottomCount);
  const top = range(nLayer - topCount, nLayer);
  const middle = range(bottomCount, nLayer - topCount);
  return { nLayer, bottom, top, middle };
}

/**
 * Offsite-Tuning's uniform LayerDrop rule: positions (within the `n` middle blocks) of the `k` blocks
 * to keep, `round(i·(n−1)/(k−1))` for i = 0…k−1. k = 1 keeps the first middle block.
 */
export function uniformKeepPositions(n: number, k: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new OffsiteError('BAD_LAYER_SELECTION', `need at least one middle block, got n=${n}`);
  if (!Number.isInteger(k) || k < 1 || k > n) {
    throw new OffsiteError('BAD_LAYER_SELECTION', `keep count must be an integer in [1, ${n}], got ${k}`, { where: 'uniform LayerDrop' });
  }
  if (k === 1) return [0];
  const out: number[] = [];
  // Math.round rounds .5 up, like Python's round only for non-ties; ties cannot repeat an index here
  // because the step (n−1)/(k−1) ≥ 1.
  for (let i = 0; i < k; i++) out.push(Math.round((i * (n - 1)) / (k - 1)));
  return out;
}

/** How to choose the middle blocks a LayerDrop emulator keeps; exactly one field may be set. */
export interface LayerSelection {
  /** Keep this many middle blocks at uniform positions. Default when nothing is set: half of them (rounded up). */
  keep?: number;
  /** Keep exactly these original block indices (must be middle blocks). */
  keepLayers?: number[];
  /** Drop exactly these original block indices (must be middle blocks); keep the other middle blocks. */
  dropLayers?: number[];
}

/** Original indices of the middle blocks a LayerDrop emulator keeps, ascending. */
export function selectKeptMiddle(layout: AdapterLayout, selection: LayerSelection = {}): number[] {
  const where = 'layer selection';
  const set = [selection.keep, selection.keepLayers, selection.dropLayers].filter((v) => v !== undefined).length;
  if (set > 1) throw new OffsiteError('BAD_LAYER_SELECTION', 'give only one of keep, keepLayers, dropLayers', { where });
  const middle = layout.middle;
  const checkMiddle = (list: number[], what: string): void => {
    for (const i of list) {
      if (!Number.isInteger(i) || !middle.includes(i)) {
        throw new OffsiteError(
          'BAD_LAYER_SELECTION',
          `${what} lists block ${i}, which is not a middle block (middle blocks: ${middle.join(',')})`,
          { where },
        );
      }
    }
    if (new Set(list).size !== list.length) throw new OffsiteError('BAD_LAYER_SELECTION', `${what} repeats a block`, { where });
  };
  if (selection.keepLayers) {
    checkMiddle(selection.keepLayers, 'keepLayers');
    if (selection.keepLayers.length === 0) throw new OffsiteError('BAD_LAYER_SELECTION', 'keepLayers is empty', { where });
    return [...selection.keepLayers].sort((a, b) => a - b);
  }
  if (selection.dropLayers) {
    checkMiddle(selection.dropLayers, 'dropLayers');
    const kept = middle.filter((i) => !selection.dropLayers!.includes(i));
    if (kept.length === 0) throw new OffsiteError('BAD_LAYER_SELECTION', 'dropLayers drops every middle block; keep at least one', { where });
    return kept;
  }
  const k = selection.keep ?? Math.ceil(middle.length / 2);
  return uniformKeepPositions(middle.length, k).map((p) => middle[p]);
}

function explicitLayout(nLayer: number, options: AdapterLayoutOptions): AdapterLayout {
  const where = 'adapter layout';
  const blocks = [...options.blocks!];
  if (blocks.length === 0) throw new OffsiteError('BAD_ADAPTER_LAYOUT', 'the adapter block list is empty; name at least one block', { where });
  for (const b of blocks) {
    if (!Number.isInteger(b) || b < 0 || b >= nLayer) throw new OffsiteError('BAD_ADAPTER_LAYOUT', `adapter block ${b} is not a block of the ${nLayer}-block model (0…${nLayer - 1})`, { where });
  }
  if (new Set(blocks).size !== blocks.length) throw new OffsiteError('BAD_ADAPTER_LAYOUT', `the adapter block list ${blocks.join(',')} repeats a block`, { where });
  if (options.nAdapter !== undefined && options.nAdapter !== blocks.length) {
    throw new OffsiteError('BAD_ADAPTER_LAYOUT', `N_a=${options.nAdapter} disagrees with the ${blocks.length} adapter blocks listed; give one of them`, { where });
  }
  if (options.bottom !== undefined) throw new OffsiteError('BAD_ADAPTER_LAYOUT', 'give either explicit adapter blocks or a bottom split, not both', { where });
  if (blocks.length >= nLayer) {
    throw new OffsiteError('ADAPTER_TOO_LARGE', `${blocks.length} adapter blocks leave no middle block in a ${nLayer}-block model; choose at most ${nLayer - 1}`, { where });
  }
  const sorted = blocks.sort((a, b) => a - b);
  let b = 0;
  while (b < sorted.length && sorted[b] === b) b++;
  const set = new Set(sorted);
  return { nLayer, bottom: sorted.slice(0, b), top: sorted.slice(b), middle: range(0, nLayer).filter((i) => !set.has(i)) };
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}
