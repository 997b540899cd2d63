import { InvalidInputError } from '@scaleot/core';
import { readModelConfig } from '@scaleot/model';
import type { AdapterLayoutOptions } from '@scaleot/offsite';

/**
 * Turns `--adapters 0,1,10,11` (explicit sandwich blocks) or `--n-adapters 4` into the library's
 * layout options. An explicit list must be a sandwich: blocks 0..b-1 at the bottom and the last t
 * blocks at the top, which is what offsite-tuning's adapters are.
 */
export async function adapterOptions(modelDir: string, adapters?: number[], nAdapters?: number): Promise<AdapterLayoutOptions> {
  if (adapters === undefined) return nAdapters === undefined ? {} : { nAdapter: nAdapters };
  if (nAdapters !== undefined && nAdapters !== adapters.length) {
    throw new InvalidInputError(`--n-adapters ${nAdapters} disagrees with --adapters (${adapters.length} blocks); give one of them`, { where: '--adapters' });
  }
  const { nLayer } = await readModelConfig(modelDir);
  const sorted = [...new Set(adapters)].sort((a, b) => a - b);
  let bottom = 0;
  while (bottom < sorted.length && sorted[bottom] === bottom) bottom++;
  const top = sorted.slice(bottom);
  const topOk = top.every((b, i) => b === nLayer - top.length + i);
  if (sorted.length !== adapters.length || !topOk || sorted.some((b) => b >= nLayer)) {
    throw new InvalidInputError(
      `adapter blocks must form a sandwich of the ${nLayer}-block model (0..b-1 and the last t blocks, e.g. 0,1,${nLayer - 2},${nLayer - 1}); got ${adapters.join(',')}`,
      { where: '--adapters' },
    );
  }
  return { nAdapter: sorted.length, bottom };
}
