import type { Rng } from './Rng.js';
import type { LmTaskSpec, TaskRow } from './taskSpec.js';

/** What the protocols need from a tokenizer (`@scaleot/tokenizer`'s Tokenizer fits). */
export interface TokenEncoder {
  /** Ids of `text` with no special tokens added. */
  encode(text: string): number[];
  /** The document separator appended after every document (`<|endoftext|>`, id 0 for the fixtures). */
  readonly eosTokenId: number;
}

/** The document texts of LM rows, in file order. */
export function lmDocuments(rows: readonly TaskRow[], spec: Pick<LmTaskSpec, 'textField'>): string[] {
  return rows.map((row, i) => {
    const text = row[spec.textField];
    if (typeof text !== 'string') throw new TypeError(`row ${i + 1}: field "${spec.textField}" is not a string`);
    return text;
  });
}

/**
 * The LM token stream: every document encoded on its own, followed by the EOS id, concatenated in order.
 */
export function lmStream(docs: Iterable<string>, tokenizer: TokenEncoder): Int32Array {
  const pieces: number[][] = [];
  let length = 0;
  for (const doc of docs) {
    const ids = tokenizer.encode(doc);
    pieces.push(ids);
    length += ids.length + 1;
  }
  const stream = new Int32Array(length);
  let at = 0;
  for (const ids of pieces) {
    stream.set(ids, at);
    at += ids.length;
    stream[at++] = tokenizer.eosTokenId;
  }
  return stream;
}

/**
 * Evaluation blocks: `stream[i·ctx : (i+1)·ctx + 1]` for i = 0 … ⌊(len−1)/ctx⌋ − 1. Each block has
 * ctx + 1 tokens (tokens 1…ctx are predicted from the ones before); consecutive blocks share one token,
 * so every stream token after the first is predicted exactly once, except for the tail that does not
 * fill a block. Blocks are copies.
 */
export function lmEvalBlocks(stream: Int32Array, ctx: number): Int32Array[] {
  checkCtx(ctx);
  const count = Math.floor((stream.length - 1) / ctx);
  const blocks: Int32Array[] = [];
  for (let i = 0; i < count; i++) blocks.push(stream.slice(i * ctx, (i + 1) * ctx + 1));
  return blocks;
}

/** `count` training windows of ctx + 1 tokens starting at uniform random offsets of the stream. */
export function randomWindows(stream: Int32Array, ctx: number, count: number, rng: Rng): Int32Array[] {
  checkCtx(ctx);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const starts = stream.length - ctx; // valid starts: 0 … len − ctx − 1
  if (starts < 1) throw new RangeError(`the stream has ${stream.length} tokens; a window needs ctx + 1 = ${ctx + 1}`);
  const windows: Int32Array[] = [];
  for (let i = 0; i < count; i++) {
    const start = rng.uniformInt(0, starts);
    windows.push(stream.slice(start, start + ctx + 1));
  }
  return windows;
}

function checkCtx(ctx: number): void {
  if (!Number.isInteger(ctx) || ctx < 1) throw new RangeError(`ctx must be a positive integer, got ${ctx}`);
}
