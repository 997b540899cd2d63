import * as tf from '@tensorflow/tfjs';
import { ModelError } from './ModelError.js';

export interface AdamWOptions {
  /** Default learning rate when step() gets none (default 1e-3). */
  lr?: number;
  /** default 0.9 */
  beta1?: number;
  /** default 0.999 */
  beta2?: number;
  /** default 1e-8 */
  eps?: number;
  /** Decoupled weight decay, p ← p·(1 − lr·wd) before the Adam step (default 0.01). */
  weightDecay?: number;
  /**
   * Which parameters get weight decay (default: rank ≥ 2, i.e. matrices and embeddings; biases and
   * LayerNorm weights are excluded).
   */
  decay?: (name: string, variable: tf.Variable) => boolean;
}

/** Serializable optimizer state (for resume): moments keyed by parameter name. */
export interface AdamWState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/**
 * AdamW (Loshchilov & Hutter; same update as torch.optim.AdamW):
 * p ← p(1−lr·wd); m ← β1m+(1−β1)g; v ← β2v+(1−β2)g²; p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
 */
export class AdamW {
  readonly params: Map<string, tf.Variable>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly decayed = new Set<string>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  readonly lr: number;
  step = 0;

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.params = new Map(params);
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const decay = opts.decay ?? ((_name: string, v: tf.Variable) => v.rank >= 2);
    for (const [name, p] of this.params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
      if (decay(name, p)) this.decayed.add(name);
    }
  }

  /** Whether `name` gets weight decay. */
  decays(name: string): boolean {
    return this.decayed.has(name);
  }

  /** One update from gradients keyed like `params` (a missing gradient counts as zero). */
  apply(grads: Map<string, tf.Tensor>, lr = this.lr): void {
    this.step += 1;
    const t = this.step;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    const stepSize = lr / bc1;
    const invSqrtBc2 = 1 / Math.sqrt(bc2);
    tf.tidy(() => {
      const b1 = tf.scalar(this.beta1);
      const b1c = tf.scalar(1 - this.beta1);
      const b2 = tf.scalar(this.beta2);
      const b2c = tf.scalar(1 - this.beta2);
      const eps = tf.scalar(this.eps);
      const negStep = tf.scalar(-stepSize);
      const invBc2 = tf.scalar(invSqrtBc2);
      const keep = tf.scalar(1 - lr * this.weightDecay);
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        if (g && !tf.util.arraysEqual(g.shape, p.shape)) {
          throw new ModelError('SHAPE_MISMATCH', `gradient [${g.shape}] does not match parameter [${p.shape}]`, { where: name });
        }
        const mNew = g ? tf.add(tf.mul(m, b1), tf.mul(g, b1c)) : tf.mul(m, b1);
        const vNew = g ? tf.add(tf.mul(v, b2), tf.mul(tf.mul(g, g), b2c)) : tf.mul(v, b2);
        const update = tf.div(mNew, tf.add(tf.mul(tf.sqrt(vNew), invBc2), eps));
        const base = this.decayed.has(name) && this.weightDecay !== 0 ? tf.mul(p, keep) : p;
        p.assign(tf.add(base, tf.mul(update, negStep)));
        m.assign(mNew);
        v.assign(vNew);
      }
    });
  }

  getState(): AdamWState {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const name of this.params.keys()) {
      m[name] = (this.m.get(name)!.dataSync() as Float32Array).slice(); // cpu returns its live store
      v[name] = (this.v.get(name)!.dataSync() as Float32Array).slice();
    }
    return { step: this.step, m, v };
  }

  setState(state: AdamWState): void {
    for (const [name, p] of this.params) {
      const m = state.m[name];
      const v = state.v[name];
      if (!m || !v || m.length !== p.size || v.length !== p.size) {
        throw new ModelError('BAD_OPTIMIZER_STATE', `optimizer state lacks "${name}" or has the wrong size (want ${p.size})`, { where: name });
      }
    }
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        this.m.get(name)!.assign(tf.tensor(state.m[name], p.shape, 'float32'));
        this.v.get(name)!.assign(tf.tensor(state.v[name], p.shape, 'float32'));
      }
    });
    this.step = state.step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
