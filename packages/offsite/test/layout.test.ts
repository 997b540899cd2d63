import { describe, expect, it } from 'vitest';
import { adapterLayout, isSandwich, ManifestError, OffsiteError, selectKeptMiddle, uniformKeepPositions, validateManifest } from '@scaleot/offsite';

describe('adapter layout and the uniform LayerDrop rule', () => {
  it('splits N_a evenly by default and honours an explicit bottom count', () => {
    expect(adapterLayout(12)).toEqual({ nLayer: 12, bottom: [0, 1], top: [10, 11], middle: [2, 3, 4, 5, 6, 7, 8, 9] });
    expect(adapterLayout(12, { nAdapter: 3, bottom: 1 })).toMatchObject({ bottom: [0], top: [10, 11] });
    expect(adapterLayout(12, { nAdapter: 5 })).toMatchObject({ bottom: [0, 1], top: [9, 10, 11] });
  });

  it('takes explicit adapter blocks at any depths (CRaSh-style): the middle is every other block', () => {
    const crash = adapterLayout(12, { blocks: [11, 0, 7, 4] });
    expect(crash).toEqual({ nLayer: 12, bottom: [0], top: [4, 7, 11], middle: [1, 2, 3, 5, 6, 8, 9, 10] });
    expect(isSandwich(crash)).toBe(false);
    // A sandwich given as a list is the sandwich.
    expect(adapterLayout(12, { blocks: [0, 1, 10, 11] })).toEqual(adapterLayout(12));
    expect(isSandwich(adapterLayout(12, { blocks: [0, 1, 10, 11] }))).toBe(true);
    expect(adapterLayout(12, { blocks: [5] })).toMatchObject({ bottom: [], top: [5] });
    expect(selectKeptMiddle(crash, { dropLayers: [2, 5, 9] })).toEqual([1, 3, 6, 8, 10]);
    for (const [blocks, code] of [[[], 'BAD_ADAPTER_LAYOUT'], [[0, 0, 11], 'BAD_ADAPTER_LAYOUT'], [[0, 12], 'BAD_ADAPTER_LAYOUT'], [[0.5], 'BAD_ADAPTER_LAYOUT'], [[...Array(12).keys()], 'ADAPTER_TOO_LARGE']] as const) {
      expect(() => adapterLayout(12, { blocks })).toThrow(expect.objectContaining({ code }));
    }
    expect(() => adapterLayout(12, { blocks: [0, 4, 7, 11], nAdapter: 3 })).toThrow(expect.objectContaining({ code: 'BAD_ADAPTER_LAYOUT' }));
    expect(() => adapterLayout(12, { blocks: [0, 4, 7, 11], bottom: 1 })).toThrow(expect.objectContaining({ code: 'BAD_ADAPTER_LAYOUT' }));
  });

  it("keeps round(i·(n−1)/(k−1)) of the middle blocks (Offsite-Tuning's rule)", () => {
    expect(uniformKeepPositions(8, 4)).toEqual([0, 2, 5, 7]); // 0, 2.33, 4.67, 7
    expect(uniformKeepPositions(8, 2)).toEqual([0, 7]);
    expect(uniformKeepPositions(8, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(uniformKeepPositions(10, 3)).toEqual([0, 5, 9]); // 4.5 rounds up
    expect(uniformKeepPositions(5, 1)).toEqual([0]);
    const layout = adapterLayout(12);
    expect(selectKeptMiddle(layout, { keep: 4 })).toEqual([2, 4, 7, 9]);
  });

  it('takes explicit keep or drop lists (the reference run drops 3,5,7,9)', () => {
    const layout = adapterLayout(12);
    expect(selectKeptMiddle(layout, { dropLayers: [3, 5, 7, 9] })).toEqual([2, 4, 6, 8]);
    expect(selectKeptMiddle(layout, { keepLayers: [8, 2] })).toEqual([2, 8]);
  });

  it('rejects N_a that leaves no middle block, and selections outside the middle', () => {
    expect(() => adapterLayout(12, { nAdapter: 12 })).toThrow(expect.objectContaining({ code: 'ADAPTER_TOO_LARGE' }));
    expect(() => adapterLayout(12, { nAdapter: 20 })).toThrow(OffsiteError);
    expect(() => adapterLayout(12, { nAdapter: 0 })).toThrow(expect.objectContaining({ code: 'BAD_ADAPTER_LAYOUT' }));
    const layout = adapterLayout(12);
    expect(() => selectKeptMiddle(layout, { dropLayers: [1] })).toThrow(expect.objectContaining({ code: 'BAD_LAYER_SELECTION' }));
    expect(() => selectKeptMiddle(layout, { dropLayers: [2, 3, 4, 5, 6, 7, 8, 9] })).toThrow(expect.objectContaining({ code: 'BAD_LAYER_SELECTION' }));
    expect(() => selectKeptMiddle(layout, { keep: 9 })).toThrow(expect.objectContaining({ code: 'BAD_LAYER_SELECTION' }));
    expect(() => selectKeptMiddle(layout, { keep: 2, dropLayers: [3] })).toThrow(expect.objectContaining({ code: 'BAD_LAYER_SELECTION' }));
  });
});

describe('manifest validation', () => {
  const good = () => ({
    format: 'scaleot.adapter',
    version: 1,
    sourceModel: { sha256: 'a'.repeat(64), modelType: 'gpt2', nLayer: 4, nEmbd: 8 },
    method: 'uniform',
    parameters: {},
    layerMap: ['adapter', 'raw', 'dropped', 'adapter'],
    adapter: { nAdapter: 2, bottom: [0], top: [3], lora: null },
    tensors: ['transformer.h.0.ln_1.weight'],
    createdAt: '2026-01-01T00:00:00.000Z',
  });

  it('accepts a well-formed manifest', () => {
    expect(validateManifest(good(), 'scaleot.adapter').format).toBe('scaleot.adapter');
  });

  it.each([
    ['an unknown version', (m: Record<string, unknown>) => (m.version = 2), 'MANIFEST_VERSION'],
    ['the wrong format', (m: Record<string, unknown>) => (m.format = 'scaleot.emulator'), 'MANIFEST_FORMAT'],
    ['a missing source model', (m: Record<string, unknown>) => delete m.sourceModel, 'MANIFEST_FIELD'],
    ['a bad hash', (m: Record<string, unknown>) => ((m.sourceModel as Record<string, unknown>).sha256 = 'xyz'), 'MANIFEST_FIELD'],
    ['a short layer map', (m: Record<string, unknown>) => (m.layerMap = ['adapter']), 'MANIFEST_FIELD'],
    ['an unknown layer role', (m: Record<string, unknown>) => (m.layerMap = ['adapter', 'squashed', 'dropped', 'adapter']), 'MANIFEST_FIELD'],
    ['adapters that disagree with the layer map', (m: Record<string, unknown>) => (m.adapter = { nAdapter: 2, bottom: [0], top: [2], lora: null }), 'MANIFEST_FIELD'],
    ['no tensor list', (m: Record<string, unknown>) => delete m.tensors, 'MANIFEST_FIELD'],
  ])('rejects %s', (_what, mutate, code) => {
    const m = good() as Record<string, unknown>;
    mutate(m);
    expect(() => validateManifest(m, 'scaleot.adapter', 'adapter.json')).toThrow(ManifestError);
    expect(() => validateManifest(m, 'scaleot.adapter', 'adapter.json')).toThrow(expect.objectContaining({ code }));
  });
});
