import { describe, expect, it } from 'vitest';
import { makespan } from '@scaleot/cluster';

describe('makespan (the compute critical path of a round)', () => {
  it('schedules longest first on identical workers', () => {
    expect(makespan([1, 1, 1], 2)).toBe(2); // 3 equal rollouts on 2 workers: two waves
    expect(makespan([3, 2, 2], 2)).toBe(4);
    expect(makespan([5, 1, 1, 1], 2)).toBe(5);
    expect(makespan([2, 2], 4)).toBe(2);
    expect(makespan([], 2)).toBe(0);
  });
});
