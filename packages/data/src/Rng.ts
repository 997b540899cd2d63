/**
 * The project's seeded random number generator: xoshiro128** seeded through splitmix32, so every seed
 * (including 0 and small consecutive integers) gives a well-mixed, independent-looking stream. The whole
 * state is four uint32 words, which `state` exposes so that resumable jobs can save and restore it.
 */
export class Rng {
  private readonly s: Uint32Array;

  constructor(state: ArrayLike<number>) {
    if (state.length !== 4) throw new RangeError(`Rng state must be 4 uint32 words, got ${state.length}`);
    this.s = Uint32Array.from(state);
    if (this.s.every((w) => w === 0)) throw new RangeError('Rng state must not be all zeros');
  }

  /** A generator from any finite integer seed (uses all 53 bits of a safe integer). */
  static fromSeed(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      words.push((z ^ (z >>> 16)) >>> 0);
    }
    if (!words.some((w) => w !== 0)) words[0] = 1;
    return new Rng(words);
  }

  /** A copy of the state; `new Rng(rng.state)` continues the same stream. */
  get state(): number[] {
    return Array.from(this.s);
  }

  /** The next uniform uint32. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [low, high), without modulo bias. The range must be at most 2^32. */
  uniformInt(low: number, high: number): number {
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
      throw new RangeError(`uniformInt needs integers low < high, got [${low}, ${high})`);
    }
    const range = high - low;
    if (range > 2 ** 32) throw new RangeError(`uniformInt range ${range} exceeds 2^32`);
    // Rejection sampling: accept only draws below the largest multiple of `range`.
    const limit = 2 ** 32 - (2 ** 32 % range);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return low + (x % range);
    }
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.uniformInt(0, i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** An independent generator derived from this one (advances this one by four draws). */
  fork(): Rng {
    return new Rng([this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32() | 1]);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The seeded RNG every package uses for anything that must be reproducible. */
export function createRng(seed: number): Rng {
  return Rng.fromSeed(seed);
}

/** Shuffles `items` in place with `rng` and returns it. */
export function shuffle<T>(items: T[], rng: Rng): T[] {
  return rng.shuffle(items);
}

/** A uniform integer in [low, high) drawn from `rng`. */
export function uniformInt(rng: Rng, low: number, high: number): number {
  return rng.uniformInt(low, high);
}
