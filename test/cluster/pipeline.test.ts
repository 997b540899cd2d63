import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@scaleot/backend';
import { runPipeline } from '@scaleot/cluster';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../support/fixtures.js';
import { REDIS_URL } from './helpers.js';

// The demo's pipeline, shortened: a spawned coordinator + 2 worker processes driven through the HTTP
// API (stage 1, two emulators, managed tuning on Moby-Dick, plug-in, five numbers, plots).
let out: string;

/** Budgets that only prove the graph runs. */
const SHORT = {
  stage1: { steps: 2, batchSize: 4, microBatchSize: 2, seqLen: 32, rlBatchSize: 2, rank: 16 },
  maxDocuments: 6,
  tune: { steps: 2, batchSize: 4, microBatchSize: 2, seqLen: 32 },
  eval: { maxBlocks: 2, evalBatchSize: 2 },
  fullFineTune: false,
};

beforeAll(async () => {
  await initBackend('wasm');
  out = await mkdtemp(join(tmpdir(), 'scaleot-cluster-pipeline-'));
});

afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('runPipeline against Redis', () => {
  it('runs the whole job graph on a local coordinator and two workers', async () => {
    const result = await runPipeline({
      outDir: out,
      redis: REDIS_URL,
      ...SHORT,
    });
    expect(result.mode).toBe('cluster');
    expect(result.reports).toHaveLength(2);
    for (const { report } of result.reports) {
      expect(report.metric).toBe('perplexity');
      for (const v of [report.full_zero_shot, report.emulator_zero_shot, report.emulator_fine_tuned, report.plug_in]) expect(Number.isFinite(v) && v > 1).toBe(true);
      expect(report.full_fine_tuned).toBeNull();
    }
    // Same base model and task: the full model's zero-shot number is shared; the emulators differ.
    expect(result.reports[0].report.full_zero_shot).toBe(result.reports[1].report.full_zero_shot);
    expect(result.reports[0].report.emulator_zero_shot).not.toBe(result.reports[1].report.emulator_zero_shot);
    // The stage-1 artifacts came from the distributed rounds (two shards per round).
    const manifest = JSON.parse(await readFile(join(result.stage1Dir, 'manifest.json'), 'utf8'));
    expect(manifest.hyperParameters.distributed.shards).toBe(2);
    expect(result.plots.length).toBe(4);
    expect(await readFile(result.plots[0], 'utf8')).toMatch(/^<svg/);
    expect(await readFile(result.reportFile, 'utf8')).toContain('plug-in');
  });

  it('serves another family as the API base model: LLaMA-3 through the same job graph', async () => {
    // 4 blocks: the demo takes N_a = 2 here. The coordinator's requests name the model by its storage
    // name (`baseModel`), whatever its family.
    const result = await runPipeline({
      outDir: join(out, 'llama3'),
      modelDir: join(FIXTURES_DIR, 'families/llama3-tiny'),
      redis: REDIS_URL,
      ...SHORT,
    });
    expect(result.mode).toBe('cluster');
    expect(result.scores).toHaveLength(4);
    expect(result.reports.map((r) => r.preset.nAdapter)).toEqual([2, 2]);
    for (const { report } of result.reports) {
      for (const v of [report.full_zero_shot, report.emulator_zero_shot, report.emulator_fine_tuned, report.plug_in]) expect(Number.isFinite(v) && v > 1).toBe(true);
    }
    const saved = JSON.parse(await readFile(join(out, 'llama3', 'report.json'), 'utf8'));
    expect(saved.baseModel).toBe('llama3-tiny');
  });
});

