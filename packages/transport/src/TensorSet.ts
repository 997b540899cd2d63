import { assertTensor, createTensor, type Tensor } from './Tensor.js';
import type { DType, TensorData } from './dtypes.js';
import { TransportError } from './TransportError.js';

/**
 * A named collection of tensors sent as one message (e.g. all harmonizer gradients of one worker).
 * Insertion order is kept on the wire. Arrays are referenced, not copied: they are sent zero-copy, so
 * do not write to them until the send that carries them has resolved.
 */
export class TensorSet implements Iterable<[string, Tensor]> {
  private readonly tensors = new Map<string, Tensor>();

  constructor(entries?: Iterable<[string, Tensor]> | Record<string, Tensor>) {
    if (!entries) return;
    const pairs = Symbol.iterator in entries ? (entries as Iterable<[string, Tensor]>) : Object.entries(entries);
    for (const [name, tensor] of pairs) this.set(name, tensor);
  }

  /** Adds or replaces `name`. Validates that dtype, shape and bytes agree. */
  set(name: string, tensor: Tensor): this {
    if (typeof name !== 'string' || name.length === 0) {
      throw new TransportError('INVALID_TENSOR', 'tensor names must be non-empty strings');
    }
    assertTensor(tensor, name);
    this.tensors.set(name, tensor);
    return this;
  }

  /** Shorthand for `set(name, createTensor(data, shape, dtype))`. */
  add(name: string, data: TensorData, shape?: readonly number[], dtype?: DType): this {
    return this.set(name, createTensor(data, shape, dtype));
  }

  get(name: string): Tensor | undefined {
    return this.tensors.get(name);
  }

  /** Like `get`, but throws INVALID_TENSOR naming the missing tensor. */
  require(name: string): Tensor {
    const tensor = this.tensors.get(name);
    if (!tensor) throw new TransportError('INVALID_TENSOR', `tensor "${name}" is not in the set (has: ${this.names.join(', ') || 'none'})`);
    return tensor;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  get size(): number {
    return this.tensors.size;
  }

  /** Total payload bytes (headers excluded). */
  get byteLength(): number {
    let total = 0;
    for (const tensor of this.tensors.values()) total += tensor.data.byteLength;
    return total;
  }

  entries(): IterableIterator<[string, Tensor]> {
    return this.tensors.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, Tensor]> {
    return this.tensors.entries();
  }
}
