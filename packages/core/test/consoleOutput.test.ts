import { describe, expect, it } from 'vitest';
import { formatDuration, formatField, humanLine, progressLine } from '@scaleot/core';

describe('human console output', () => {
  it('formats learning rates and tiny values in scientific notation, the rest with 4 decimals', () => {
    expect(formatField('lr', 5e-5)).toBe('5.00e-5');
    expect(formatField('lr', 0.002)).toBe('2.00e-3');
    expect(formatField('loss', 4.123456)).toBe('4.1235');
    expect(formatField('gradNorm', 0.00002)).toBe('2.00e-5');
    expect(formatField('step', 12)).toBe('12');
    expect(formatField('phase', 'tune')).toBe('tune');
  });

  it('draws a progress line with count, fields and ETA', () => {
    expect(progressLine({ label: 'tune', done: 6, total: 12, unit: 'step', fields: { loss: 4.5, lr: 5e-5 }, etaS: 65 }, 8)).toBe('tune [####----] 6/12 steps  loss 4.5000  lr 5.00e-5  ETA 1:05');
    expect(formatDuration(Infinity)).toBe('?');
    expect(formatDuration(3725)).toBe('1:02:05');
  });

  it('turns a pino record into one line, a forwarded child record into `from: message`', () => {
    expect(humanLine({ level: 30, msg: 'stage 1 started', pid: 1 })).toBe('stage 1 started');
    expect(humanLine({ level: 40, msg: 'slow round' })).toBe('warning: slow round');
    expect(humanLine({ level: 50, msg: 'job failed', err: { message: 'lock lost' } })).toBe('error: job failed (lock lost)');
    expect(humanLine({ level: 40, from: 'worker-1', record: { level: 50, msg: 'could not renew lock' }, msg: 'could not renew lock' })).toBe('error: worker-1: could not renew lock');
  });
});
