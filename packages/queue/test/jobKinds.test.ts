import { describe, expect, it } from 'vitest';
import { InvalidJobPayloadError, JOB_KINDS, QueueError, validateJobPayload, type JobKind, type JobPayload } from '@scaleot/queue';

const shard: JobPayload<'stage1.shard'> = {
  runId: 'run-1',
  round: 4,
  shardIndex: 1,
  shardCount: 4,
  batch: { type: 'seeded', dataset: 'corpus/wikitext-train', seed: 42, count: 16, windowLength: 128 },
  paramsVersion: 4,
  paramsAddress: 'tcp://10.0.0.2:5557',
  resultAddress: 'tcp://10.0.0.2:5556',
};

export const validPayloads: { [K in JobKind]: JobPayload<K> } = {
  'stage1.shard': shard,
  'stage1.rollout': {
    runId: 'run-1',
    round: 4,
    candidateIndex: 2,
    mask: [1, 0, 1, 1, 0, 1, 0, 0],
    paramsVersion: 4,
    batch: { type: 'windows', dataset: 'corpus/heldout', windowIndices: [3, 17, 99] },
    resultAddress: 'tcp://10.0.0.2:5556',
  },
  'stage1.round': { runId: 'run-1', round: 4, paramsVersion: 4, shardCount: 4, candidateCount: 3 },
  'emulator.build': { tenant: 'acme', emulatorId: 'emu-1', model: 'models/sotu-gpt2-tiny', stage1: 'artifacts/run-1/stage1', adapterBlocks: 2, alpha: 0.5, beta: 0.25, output: 'artifacts/emu-1' },
  tune: { tenant: 'acme', tuneId: 't-1', emulator: 'artifacts/emu-1', task: 'tasks/sst2.json', output: 'artifacts/t-1', hyper: { lr: 1e-4, steps: 3, warmupSteps: 1, seed: 7 } },
  plugin: { tenant: 'acme', pluginId: 'p-1', model: 'models/sotu-gpt2-tiny', adapters: 'artifacts/t-1/adapters', output: 'artifacts/p-1' },
  evaluate: { tenant: 'acme', evaluationId: 'e-1', model: 'artifacts/p-1', task: 'tasks/sst2.json', metrics: ['accuracy'] },
  'pipeline.stage': { runId: 'pipe-1', model: 'models/llama-7b', stageIndex: 1, stageCount: 3, fromBlock: 11, toBlock: 22, controlAddress: 'tcp://10.0.0.5:41000' },
};

function issuesOf(kind: JobKind, payload: unknown): string[] {
  try {
    validateJobPayload(kind, payload);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidJobPayloadError);
    const invalid = error as InvalidJobPayloadError;
    expect(invalid.code).toBe('INVALID_JOB_PAYLOAD');
    expect(invalid.unrecoverable).toBe(true);
    expect(invalid.kind).toBe(kind);
    return invalid.issues.map((issue) => `${issue.path} ${issue.message}`);
  }
  throw new Error('expected the payload to be rejected');
}

describe('job payload validation', () => {
  it('accepts a valid payload of every kind', () => {
    expect(Object.keys(validPayloads).sort()).toEqual([...JOB_KINDS].sort());
    for (const kind of JOB_KINDS) expect(validateJobPayload(kind, validPayloads[kind])).toBe(validPayloads[kind]);
  });

  it('names the field and what is wrong with it', () => {
    expect(issuesOf('stage1.shard', { ...shard, round: -1 })).toEqual(['$.round must be an integer >= 0, got -1']);
    expect(issuesOf('stage1.shard', { ...shard, shardIndex: 4 })).toEqual(['$.shardIndex must be < shardCount (4), got 4']);
    expect(issuesOf('stage1.shard', { ...shard, resultAddress: 'localhost:5556' })[0]).toMatch(/^\$\.resultAddress must be a ZeroMQ address/);
    expect(issuesOf('stage1.shard', { ...shard, batch: { ...shard.batch, type: 'random' } })[0]).toMatch(/^\$\.batch\.type must be one of "windows", "documents", "seeded"/);
    expect(issuesOf('stage1.shard', { ...shard, batch: { type: 'seeded', dataset: 'x', seed: 1.5, count: 0 } })).toEqual([
      '$.batch.seed must be an integer, got 1.5',
      '$.batch.count must be an integer >= 1 and <= 1000000, got 0',
    ]);
    const { paramsVersion: _omitted, ...missing } = shard;
    expect(issuesOf('stage1.shard', missing)).toEqual(['$.paramsVersion is required (an integer >= 0)']);
    expect(issuesOf('stage1.shard', { ...shard, paramVersion: 4 })[0]).toMatch(/^\$\.paramVersion is not a known field/);
    expect(issuesOf('stage1.rollout', { ...validPayloads['stage1.rollout'], mask: [1, 0, 2] })).toEqual(['$.mask[2] must be one of 0, 1, got 2']);
    expect(issuesOf('emulator.build', { ...validPayloads['emulator.build'], alpha: 1.5, model: '../../etc/passwd' })).toEqual([
      '$.model must be an artifact reference (a path or URI without ".." segments), got "../../etc/passwd"',
      '$.alpha must be a finite number >= 0 and < 1, got 1.5',
    ]);
    expect(issuesOf('tune', { ...validPayloads.tune, tenant: '' })[0]).toBe('$.tenant must be 1..128 characters long, got 0');
    expect(issuesOf('pipeline.stage', { ...validPayloads['pipeline.stage'], stageIndex: 3, toBlock: 11 })).toEqual(['$.stageIndex must be < stageCount (3), got 3', '$.toBlock must be > fromBlock (11), got 11']);
    expect(issuesOf('evaluate', 'not an object')).toEqual(['$ must be an object, got "not an object"']);
    // Hyper-parameters are a strict contract too: a misspelt key or a broken schedule is refused.
    expect(issuesOf('tune', { ...validPayloads.tune, hyper: { stpes: 10 } })[0]).toMatch(/^\$\.hyper\.stpes is not a known field/);
    expect(issuesOf('tune', { ...validPayloads.tune, hyper: { steps: 5, warmupSteps: 9 } })).toEqual(['$.hyper.warmupSteps must be <= steps (5), got 9']);
    expect(issuesOf('emulator.build', { ...validPayloads['emulator.build'], alpha: 1 })).toEqual(['$.alpha must be a finite number >= 0 and < 1, got 1']);
    expect(issuesOf('emulator.build', { ...validPayloads['emulator.build'], adapterBlocks: 0 })[0]).toMatch(/^\$\.adapterBlocks must be an integer >= 1/);
  });

  it('keeps tensors out of payloads, pointing at the transport', () => {
    const [typed] = issuesOf('stage1.rollout', { ...validPayloads['stage1.rollout'], mask: new Float32Array(8) });
    expect(typed).toMatch(/^\$\.mask is a Float32Array: tensors do not go in job payloads .* @scaleot\/transport/);
    const [buffer] = issuesOf('tune', { ...validPayloads.tune, hyper: { init: Buffer.alloc(16) } });
    expect(buffer).toMatch(/^\$\.hyper\.init is a Buffer: tensors/);
    const [long] = issuesOf('stage1.shard', { ...shard, batch: { type: 'windows', dataset: 'x', windowIndices: new Array(20_000).fill(0) } });
    expect(long).toMatch(/^\$\.batch\.windowIndices has 20000 items, over the 10000 allowed/);
    const [big] = issuesOf('tune', { ...validPayloads.tune, output: 'y'.repeat(300_000) });
    expect(big).toMatch(/^\$ is \d+ bytes as JSON, over the 262144 allowed/);
    const [instance] = issuesOf('plugin', { ...validPayloads.plugin, output: new Date(0) });
    expect(instance).toBe('$.output is a Date; payloads are plain JSON objects');
  });

  it('refuses unknown kinds with UNKNOWN_JOB_KIND', () => {
    expect(() => validateJobPayload('stage3.magic' as JobKind, {})).toThrow(QueueError);
  });
});
