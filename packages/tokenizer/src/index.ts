export { Tokenizer, type EncodeOptions, type DecodeOptions } from './Tokenizer.js';
export { TokenizerError } from './TokenizerError.js';
