import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './TokenizerError.js';

export interface EncodeOptions {
  /** Let the post-processor add BOS/EOS or template tokens. Default: false (the fixture protocols never add any). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens such as `<|endoftext|>` from the text. Default: false, so decode(encode(x)) === x. */
  skipSpecialTokens?: boolean;
}

type JsonObject = Record<string, unknown>;

/**
 * A Hugging Face tokenizer (`tokenizer.json` + `tokenizer_config.json`) that reproduces the Python
 * `tokenizers` ids exactly. Encoding adds nothing by default: the evaluation protocols concatenate
 * separately encoded pieces and must not get a BOS/EOS in between.
 */
export class Tokenizer {
  readonly eosTokenId: number;
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  /** Number of ids the tokenizer can produce (base vocabulary plus added tokens); the embedding needs at least this many rows. */
  readonly vocabSize: number;

  private constructor(
    private readonly hf: HfTokenizer,
    ids: { eos: number; bos?: number; pad?: number; vocabSize: number },
  ) {
    this.eosTokenId = ids.eos;
    this.bosTokenId = ids.bos;
    this.padTokenId = ids.pad;
    this.vocabSize = ids.vocabSize;
  }

  /** Loads `tokenizer.json` and `tokenizer_config.json` from a model directory. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    const tokenizerJson = await readJsonObject(tokenizerPath, 'the model directory must hold the tokenizer saved with it (save_pretrained writes it)');
    const config = await readJsonObject(configPath, 'save the tokenizer with save_pretrained, which writes it beside tokenizer.json');
    const model = tokenizerJson.model;
    if (!isObject(model) || model.vocab === undefined) {
      throw new TokenizerError('has no "model" section with a vocabulary; is this a Hugging Face tokenizer.json?', { where: tokenizerPath });
    }

    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, config);
    } catch (cause) {
      throw new TokenizerError(`could not be loaded: ${(cause as Error).message}`, { where: tokenizerPath, cause });
    }

    const vocab = hf.get_vocab(true);
    if (vocab.size === 0) throw new TokenizerError('has an empty vocabulary', { where: tokenizerPath });
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);

    const idOf = (field: string): number | undefined => {
      const token = tokenContent(config[field]);
      if (token === undefined) return undefined;
      const id = hf.token_to_id(token);
      if (id === undefined) {
        throw new TokenizerError(`"${field}" is ${JSON.stringify(token)}, which is not in the vocabulary of tokenizer.json`, { where: configPath });
      }
      return id;
    };
    // GPT-2 style configs always name eos; older ones rely on <|endoftext|> being there.
    const eos = idOf('eos_token') ?? hf.token_to_id('<|endoftext|>');
    if (eos === undefined) {
      throw new TokenizerError('names no "eos_token" and the vocabulary has no <|endoftext|>; add "eos_token" (the document separator)', { where: configPath });
    }
    return new Tokenizer(hf, { eos, bos: idOf('bos_token'), pad: idOf('pad_token'), vocabSize: Math.max(vocab.size, maxId + 1) });
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    // No clean-up of spaces before punctuation: it would break decode(encode(x)) === x.
    return this.hf.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  /** The id of a token string (e.g. "<|endoftext|>"), or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Special tokens appear either as a plain string or as a serialized AddedToken `{content, ...}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

async function readJsonObject(path: string, hint: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TokenizerError(missing ? `is missing; ${hint}` : `cannot be read: ${(cause as Error).message}`, { where: path, cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new TokenizerError(`is not valid JSON (${(cause as Error).message}); re-save the tokenizer`, { where: path, cause });
  }
  if (!isObject(value)) throw new TokenizerError('must hold a JSON object', { where: path });
  return value;
}
