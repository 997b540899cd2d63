import { beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '@scaleot/tokenizer';
import { builtinTask, createRng, lmDocuments, lmEvalBlocks, lmStream, randomWindows, taskRows, type LmTaskSpec, type Task } from '@scaleot/data';
import { fixtureDataDir, tinyModelDir } from './fixtures.js';

const CTX = 256;

describe('LM protocol on the moby fixture', () => {
  let tok: Tokenizer;
  let moby: Task;
  let train: Int32Array;
  let test: Int32Array;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(tinyModelDir);
    moby = await builtinTask('moby', fixtureDataDir);
    const spec = moby.spec as LmTaskSpec;
    train = lmStream(lmDocuments(taskRows(moby, 'train'), spec), tok);
    test = lmStream(lmDocuments(taskRows(moby, 'test'), spec), tok);
  });

  it('has stable stream lengths (110 train and 26 test documents)', () => {
    expect(taskRows(moby, 'train')).toHaveLength(110);
    expect(taskRows(moby, 'test')).toHaveLength(26);
    expect(train.length).toBe(328040);
    expect(test.length).toBe(62666);
  });

  it('separates documents by <|endoftext|> = 0, in file order, each decoding back to its text', () => {
    for (const [stream, split] of [[train, 'train'], [test, 'test']] as const) {
      const docs = lmDocuments(taskRows(moby, split), moby.spec as LmTaskSpec);
      const zeros = [...stream.keys()].filter((i) => stream[i] === 0);
      expect(zeros).toHaveLength(docs.length);
      expect(zeros.at(-1)).toBe(stream.length - 1);
      let start = 0;
      zeros.forEach((end, d) => {
        expect(tok.decode(stream.subarray(start, end))).toBe(docs[d]);
        start = end + 1;
      });
    }
  });

  it('cuts ⌊(len−1)/ctx⌋ blocks of ctx+1 tokens that overlap by exactly one token', () => {
    const blocks = lmEvalBlocks(test, CTX);
    expect(blocks).toHaveLength(Math.floor((test.length - 1) / CTX));
    expect(blocks).toHaveLength(244);
    blocks.forEach((block, i) => {
      expect(block.length).toBe(CTX + 1);
      expect(Array.from(block)).toEqual(Array.from(test.subarray(i * CTX, (i + 1) * CTX + 1)));
      if (i > 0) expect(block[0]).toBe(blocks[i - 1][CTX]);
    });
    // The predicted tokens are stream[1 … n·ctx], each exactly once; the tail is left out.
    const lastEnd = blocks.length * CTX;
    expect(lastEnd).toBeLessThanOrEqual(test.length - 1);
    expect(test.length - 1 - lastEnd).toBeLessThan(CTX);
    expect(lmEvalBlocks(train, CTX)).toHaveLength(Math.floor((train.length - 1) / CTX));
  });

  it('returns copies, so callers cannot corrupt the stream', () => {
    const block = lmEvalBlocks(test, CTX)[0];
    const before = test[0];
    block[0] = before + 1;
    expect(test[0]).toBe(before);
  });
});

describe('lmEvalBlocks edge cases', () => {
  it('gives no block for a stream of ctx tokens and one for ctx + 1', () => {
    expect(lmEvalBlocks(new Int32Array(4), 4)).toHaveLength(0);
    expect(lmEvalBlocks(Int32Array.from([1, 2, 3, 4, 5]), 4).map((b) => Array.from(b))).toEqual([[1, 2, 3, 4, 5]]);
    expect(lmEvalBlocks(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 4).map((b) => Array.from(b))).toEqual([[1, 2, 3, 4, 5], [5, 6, 7, 8, 9]]);
  });

  it('rejects a bad ctx', () => {
    expect(() => lmEvalBlocks(new Int32Array(10), 0)).toThrow(RangeError);
  });
});

describe('lmStream', () => {
  it('appends the tokenizer eos after every document, empty ones included', () => {
    const fake = { eosTokenId: 9, encode: (text: string) => [...text].map((c) => c.charCodeAt(0) - 96) };
    expect(Array.from(lmStream(['ab', '', 'c'], fake))).toEqual([1, 2, 9, 9, 3, 9]);
  });
});

describe('randomWindows', () => {
  const stream = Int32Array.from({ length: 40 }, (_, i) => i);

  it('draws windows of ctx + 1 consecutive tokens at uniform starts covering every valid start', () => {
    const windows = randomWindows(stream, 8, 2000, createRng(1));
    const starts = new Set<number>();
    for (const w of windows) {
      expect(w.length).toBe(9);
      expect(Array.from(w)).toEqual(Array.from({ length: 9 }, (_, k) => w[0] + k));
      starts.add(w[0]);
    }
    // Valid starts are 0 … 40 − 9 = 31; all of them appear in 2000 draws, none beyond.
    expect([...starts].sort((a, b) => a - b)).toEqual(Array.from({ length: 32 }, (_, i) => i));
  });

  it('is reproducible from the seed', () => {
    const a = randomWindows(stream, 8, 20, createRng(7)).map((w) => w[0]);
    const b = randomWindows(stream, 8, 20, createRng(7)).map((w) => w[0]);
    const c = randomWindows(stream, 8, 20, createRng(8)).map((w) => w[0]);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('refuses a stream shorter than one window', () => {
    expect(() => randomWindows(new Int32Array(8), 8, 1, createRng(1))).toThrow(/ctx \+ 1/);
    expect(randomWindows(new Int32Array(9), 8, 3, createRng(1))).toHaveLength(3);
  });
});
