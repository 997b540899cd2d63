import { describe, expect, it } from 'vitest';
import { JOB_KINDS, parseJobRoutes, parseQueueNames, queueForKind, routedQueues } from '@scaleot/queue';

describe('job routes (SCALEOT_JOB_ROUTES)', () => {
  it('routes listed kinds to their queue and the rest to *', () => {
    const routes = parseJobRoutes('stage1.shard=gpu, stage1.rollout=gpu,tune=gpu-tune,*=cpu');
    expect(queueForKind(routes, 'stage1.shard')).toBe('gpu');
    expect(queueForKind(routes, 'tune')).toBe('gpu-tune');
    expect(queueForKind(routes, 'evaluate')).toBe('cpu');
    expect(queueForKind(routes, 'emulator.build')).toBe('cpu');
    expect(routedQueues(routes)).toEqual(['cpu', 'gpu', 'gpu-tune']);
  });

  it('sends every kind to the fallback queue when unset or empty', () => {
    for (const spec of [undefined, '', ' , ']) {
      const routes = parseJobRoutes(spec, 'scaleot');
      expect(JOB_KINDS.map((k) => queueForKind(routes, k))).toEqual(JOB_KINDS.map(() => 'scaleot'));
      expect(routedQueues(routes)).toEqual(['scaleot']);
    }
  });

  const bad: Array<[string, string, RegExp]> = [
    ['tune', 'INVALID_OPTIONS', /kind=queue/],
    ['train=gpu', 'UNKNOWN_JOB_KIND', /no job kind "train".*stage1\.shard/],
    ['tune=gpu,tune=cpu', 'INVALID_OPTIONS', /routed twice/],
    ['tune=gp u', 'INVALID_OPTIONS', /not valid/],
    ['*=a:b', 'INVALID_OPTIONS', /not valid/],
  ];
  for (const [spec, code, message] of bad) {
    it(`refuses "${spec}" with ${code}`, () => {
      let error: unknown;
      try {
        parseJobRoutes(spec);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code, where: 'SCALEOT_JOB_ROUTES' });
      expect((error as Error).message).toMatch(message);
    });
  }
});

describe('queue names (SCALEOT_QUEUE_NAMES)', () => {
  it('parses a comma list, falling back to one queue', () => {
    expect(parseQueueNames('gpu-stage1, gpu-tune')).toEqual(['gpu-stage1', 'gpu-tune']);
    expect(parseQueueNames('', 'cpu')).toEqual(['cpu']);
    expect(parseQueueNames(undefined)).toEqual(['scaleot']);
  });

  it('refuses repeats and bad names', () => {
    expect(() => parseQueueNames('a,a')).toThrow(/repeat/);
    expect(() => parseQueueNames('a,b c')).toThrow(/not valid/);
  });
});
