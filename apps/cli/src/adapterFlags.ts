import { InvalidInputError } from '@scaleot/core';
import { readModelConfig } from '@scaleot/model';
import type { AdapterLayoutOptions } from '@scaleot/offsite';

/**
 * Turns `--adapters 0,1,10,11` (explicit adapter blocks) or `--n-adapters 4` into the library's layout
 * options. A sandwich list (blocks 0..b-1 at the bottom and the last t blocks at the top, offsite-tuning's
 * adapters) becomes { nAdapter, bottom }; any other list (adapters at several depths, CRaSh-style, e.g.
 * 0,4,7,11) becomes { blocks }: the emulator compresses each run of middle blocks between adapters.
 */
export async function adapterOptions(modelDir: string, adapters?: number[], nAdapters?: number): Promise<AdapterLayoutOptions> {
  if (adapters === undefined) return nAdapters === undefined ? {} : { nAdapter: nAdapters };
  if (nAdapters !== undefined && nAdapters !== adapters.length) {
    throw new InvalidInputError(`--n-adapters ${nAdapters} disagrees with --adapters (${adapters.length} blocks); give one of them`, { where: '--adapters' });
  }
  const { nLayer } = await readModelConfig(modelDir);
  const sorted = [...new Set(adapters)].sort((a, b) => a - b);
  if (sorted.length !== adapters.length || sorted.some((b) => b < 0 || b >= nLayer)) {
    throw new InvalidInputError(`adapter blocks must be distinct blocks of the ${nLayer}-block model (0..${nLayer - 1}), e.g. 0,1,${nLayer - 2},${nLayer - 1}; got ${adapters.join(',')}`, { where: '--adapters' });
  }
  if (sorted.length >= nLayer) throw new InvalidInputError(`${sorted.length} adapter blocks leave no middle block in the ${nLayer}-block model`, { where: '--adapters' });
  let bottom = 0;
  while (bottom < sorted.length && sorted[bottom] === bottom) bottom++;
  const top = sorted.slice(bottom);
  const sandwich = top.every((b, i) => b === nLayer - top.length + i);
  return sandwich ? { nAdapter: sorted.length, bottom } : { blocks: sorted };
}
