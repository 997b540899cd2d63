import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer, TokenizerError } from '@scaleot/tokenizer';
import { fixturesDir, tinyModelDir } from './fixtures.js';

interface ReferenceRow { text: string; ids: number[] }
const reference: ReferenceRow[] = JSON.parse(readFileSync(join(fixturesDir, 'reference-logits.json'), 'utf8')).tokenizer;

describe('Tokenizer on the fixture tokenizer', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(tinyModelDir);
  });

  it('has the reference rows to check', () => {
    expect(reference.length).toBeGreaterThanOrEqual(8);
  });

  it.each(reference.map((r) => [r.text, r] as const))('encodes %j to the HF ids exactly', (_text, row) => {
    expect(tok.encode(row.text)).toEqual(row.ids);
  });

  it.each(reference.map((r) => [r.text] as const))('decode(encode(%j)) round-trips', (text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('gives the ids the fixture README states for the classification pieces', () => {
    expect(tok.encode('\n\nLabel:')).toEqual([199, 199, 44, 375, 847, 26]);
    expect(tok.encode(' ham')).toEqual([333, 77]);
    expect(tok.encode(' spam')).toEqual([554, 517]);
  });

  it('knows its special ids and size', () => {
    expect(tok.eosTokenId).toBe(0);
    expect(tok.bosTokenId).toBe(0);
    expect(tok.padTokenId).toBeUndefined();
    expect(tok.vocabSize).toBe(4096);
    expect(tok.tokenToId('<|endoftext|>')).toBe(0);
  });

  it('adds no special tokens unless asked, and can skip them when decoding', () => {
    expect(tok.encode('Hello world', { addSpecialTokens: false })).toEqual([40, 1324, 79, 678]);
    expect(tok.decode([65, 0, 66], { skipSpecialTokens: true })).toBe('ab');
    expect(tok.decode([65, 0, 66])).toBe('a<|endoftext|>b');
  });

  it('decodes typed arrays', () => {
    expect(tok.decode(Int32Array.from([40, 1324, 79, 678]))).toBe('Hello world');
  });

  it('does not clean up spaces before punctuation', () => {
    const text = 'a , b . c !';
    expect(tok.decode(tok.encode(text))).toBe(text);
  });
});

describe('Tokenizer.fromDir errors', () => {
  const copyModel = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'scaleot-tok-'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tinyModelDir, f), join(dir, f));
    return dir;
  };

  const rejection = async (dir: string): Promise<TokenizerError> => {
    const err = await Tokenizer.fromDir(dir).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerError);
    return err as TokenizerError;
  };

  it('names a missing tokenizer.json', async () => {
    const err = await rejection(mkdtempSync(join(tmpdir(), 'scaleot-tok-')));
    expect(err.code).toBe('INVALID_TOKENIZER');
    expect(err.where).toMatch(/tokenizer\.json$/);
    expect(err.message).toMatch(/missing/);
  });

  it('names a missing tokenizer_config.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scaleot-tok-'));
    copyFileSync(join(tinyModelDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const err = await rejection(dir);
    expect(err.where).toMatch(/tokenizer_config\.json$/);
  });

  it('names a tokenizer.json that is not JSON', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    const err = await rejection(dir);
    expect(err.where).toMatch(/tokenizer\.json$/);
    expect(err.message).toMatch(/not valid JSON/);
  });

  it('rejects a tokenizer.json without a model', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'tokenizer.json'), '{"added_tokens": []}');
    const err = await rejection(dir);
    expect(err.where).toMatch(/tokenizer\.json$/);
  });

  it('rejects a special token that is not in the vocabulary', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|nope|>' }));
    const err = await rejection(dir);
    expect(err.where).toMatch(/tokenizer_config\.json$/);
    expect(err.message).toMatch(/eos_token/);
  });

  it('accepts special tokens written as AddedToken objects', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: { content: '<|endoftext|>', special: true }, pad_token: '<|endoftext|>' }));
    const tok = await Tokenizer.fromDir(dir);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.padTokenId).toBe(0);
    expect(tok.bosTokenId).toBeUndefined();
  });
});
