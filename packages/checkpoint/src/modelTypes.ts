export interface ParameterSpec {
  /** Canonical HF name, e.g. transformer.h.3.attn.c_attn.weight. */
  name: string;
  shape: number[];
  /** Transformer block index, for per-block parameters. */
  block?: number;
}
