import { describe, expect, it } from 'vitest';
import { Rng, createRng, shuffle, uniformInt } from '@scaleot/data';

describe('Rng', () => {
  it('is xoshiro128** (reference outputs for state [1, 2, 3, 4])', () => {
    const rng = new Rng([1, 2, 3, 4]);
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([11520, 0, 5927040]);
  });

  it('is deterministic per seed and differs across seeds, including 0 and 1', () => {
    const draw = (seed: number): number[] => {
      const rng = createRng(seed);
      return Array.from({ length: 5 }, () => rng.nextUint32());
    };
    expect(draw(0)).toEqual(draw(0));
    expect(draw(0)).not.toEqual(draw(1));
    expect(draw(2 ** 40)).not.toEqual(draw(0));
    expect(draw(0).some((x) => x !== 0)).toBe(true);
  });

  it('resumes from a saved state', () => {
    const rng = createRng(123);
    rng.next();
    const saved = rng.state;
    const expected = [rng.next(), rng.uniformInt(0, 10), rng.nextUint32()];
    const resumed = new Rng(saved);
    expect([resumed.next(), resumed.uniformInt(0, 10), resumed.nextUint32()]).toEqual(expected);
  });

  it('draws floats in [0, 1) and integers in [low, high) roughly uniformly', () => {
    const rng = createRng(5);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const x = rng.next();
      expect(x >= 0 && x < 1).toBe(true);
      counts[uniformInt(rng, 0, 10)]++;
    }
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    for (let i = 0; i < 1000; i++) {
      const v = rng.uniformInt(-3, 2);
      expect(v >= -3 && v < 2 && Number.isInteger(v)).toBe(true);
    }
  });

  it('shuffles into a permutation, reproducibly', () => {
    const a = shuffle(Array.from({ length: 50 }, (_, i) => i), createRng(9));
    const b = createRng(9).shuffle(Array.from({ length: 50 }, (_, i) => i));
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('forks independent streams', () => {
    const parent = createRng(3);
    const child = parent.fork();
    expect(child.nextUint32()).not.toBe(parent.nextUint32());
  });

  it('rejects bad arguments', () => {
    expect(() => createRng(1.5)).toThrow(RangeError);
    expect(() => new Rng([0, 0, 0, 0])).toThrow(RangeError);
    expect(() => createRng(1).uniformInt(3, 3)).toThrow(RangeError);
  });
});
