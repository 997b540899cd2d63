import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TRAIN, type FiveNumberReport } from '@scaleot/offsite';
import { frontierFromReports, type FrontierResult } from '@scaleot/scaleot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `scaleot frontier --from`: the points of reports already written, read back by their shape. The
// fixtures are typed with the writers' own types where a package exports one (FiveNumberReport,
// FrontierResult), and mirror Coordinator.finish's and writeDemoReport's objects field by field.
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaleot-frontier-from-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(path: string, value: unknown): Promise<string> {
  const file = join(dir, path);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, JSON.stringify(value));
  return file;
}

/** `scaleot report`'s report.json (fiveNumberReport's result). */
function cliReport(method: 'scaleot' | 'uniform', numbers: [number, number, number, number], parameters: Record<string, unknown>, task = 'moby', attacker: number | null = null): FiveNumberReport {
  return {
    full_zero_shot: numbers[0],
    emulator_zero_shot: numbers[1],
    emulator_fine_tuned: numbers[2],
    plug_in: numbers[3],
    full_fine_tuned: null,
    attacker,
    attackers: null,
    task,
    taskType: 'lm',
    metric: 'perplexity',
    higherIsBetter: false,
    protocolVersion: 1,
    hyperParameters: { train: DEFAULT_TRAIN, lora: null, eval: { batchSize: 8, maxBlocks: 4, maxExamples: null }, fullFineTune: false, audit: null },
    emulator: { method, parameters, layerMap: [], adapter: {}, compression: {}, sourceModel: {}, blocks: 8 },
    artifacts: { modelDir: '/m', emulatorDir: `/runs/${method}/emulator`, adapterDir: '/a', pluggedDir: '/p' },
    timings: { total: 12.5 },
    createdAt: '2026-12-03T00:00:00.000Z',
  };
}

const five = (full: number, emuZero: number, emuTuned: number, plug: number) => ({ task: 'moby', metric: 'perplexity', higherIsBetter: false, full_zero_shot: full, emulator_zero_shot: emuZero, emulator_fine_tuned: emuTuned, plug_in: plug, full_fine_tuned: null, attacker: null });

describe('frontierFromReports', () => {
  it('reads every report shape into points, with α, β, kind and the numbers as written', async () => {
    const scaleot = await write('a/report.json', cliReport('scaleot', [30, 80, 45, 35], { alpha: 0.5, beta: 0.25, nAdapter: 4 }, 'moby', 28.5));
    const uniform = await write('b/report.json', cliReport('uniform', [30, 90, 50, 40], { rule: 'uniform-index' }));
    // A coordinator request's report.json (Coordinator.finish).
    const request = await write('c/report.json', { request: 'req-1', preset: { nAdapter: 4, alpha: 0.75, beta: 0 }, baseModel: 'sotu-gpt2-tiny', ...five(30, 95, 55, 33) });
    // The demo's report.json (writeDemoReport): one point per preset; (0, 0) is the adapter ceiling.
    const demo = await write('d/report.json', {
      mode: 'cluster',
      reason: null,
      task: 'moby',
      baseModel: 'sotu-gpt2-tiny',
      protocol: {},
      versions: {},
      stage1: { scores: [], hyper: {} },
      reports: [
        { preset: { nAdapter: 4, alpha: 0.25, beta: 0.5 }, request: 'req-a', report: five(30, 70, 44, 36) },
        { preset: { nAdapter: 4, alpha: 0, beta: 0 }, request: 'req-b', report: five(30, 31, 31, 31) },
      ],
    });
    const r = await frontierFromReports([scaleot, uniform, request, demo]);
    expect(r.sources).toEqual([scaleot, uniform, request, demo]);
    expect(r.task).toBe('moby');
    expect(r.metric).toBe('perplexity');
    expect(r.higherIsBetter).toBe(false);
    expect(r.points.map((p) => [p.label, p.kind, p.alpha, p.beta, p.emulator_fine_tuned, p.plug_in])).toEqual([
      ['scaleot α=0.5 β=0.25', 'scaleot', 0.5, 0.25, 45, 35],
      ['uniform LayerDrop', 'uniform-layerdrop', null, null, 50, 40],
      ['scaleot α=0.75 β=0', 'scaleot', 0.75, 0, 55, 33],
      ['scaleot α=0.25 β=0.5', 'scaleot', 0.25, 0.5, 44, 36],
      ['adapter ceiling', 'ceiling', 0, 0, 31, 31],
    ]);
    // `report --audit` wrote an attacker into the first report only.
    expect(r.points.map((p) => p.attacker)).toEqual([28.5, null, null, null, null]);
    expect(r.points[0]).toMatchObject({ full_zero_shot: 30, emulator_zero_shot: 80, blocks: 8, emulatorDir: '/runs/scaleot/emulator', seconds: 12.5 });
    expect(r.points[2]).toMatchObject({ blocks: null, emulatorDir: '' });
  });

  it("takes a directory's reports recursively, a frontier's work directory as its frontier.json only, and tells repeated labels apart", async () => {
    const frontier: FrontierResult = {
      points: [
        { label: 'scaleot α=0.5 β=0.25', kind: 'scaleot', alpha: 0.5, beta: 0.25, ...five(30, 81, 46, 34), blocks: 8, emulatorDir: '/f/e', seconds: 3 },
        { label: 'uniform LayerDrop', kind: 'uniform-layerdrop', alpha: null, beta: null, ...five(30, 90, 50, 41), blocks: 8, emulatorDir: '/f/u', seconds: 4 },
      ],
      seconds: 7,
    };
    const frontierFile = await write('runs/frontier/frontier.json', frontier);
    // The per-point reports of that frontier's work directory are not read again.
    await write('runs/frontier/reports/x/report.json', cliReport('scaleot', [1, 2, 3, 4], { alpha: 0.1, beta: 0 }));
    const other = await write('runs/other/report.json', cliReport('scaleot', [30, 79, 44, 36], { alpha: 0.5, beta: 0.25 }));
    const r = await frontierFromReports([join(dir, 'runs')]);
    expect(r.sources).toEqual([frontierFile, other]);
    expect(r.task).toBe('moby');
    expect(r.points.map((p) => p.label)).toEqual(['scaleot α=0.5 β=0.25 (frontier)', 'uniform LayerDrop', 'scaleot α=0.5 β=0.25 (other)']);
    expect(r.seconds).toBeCloseTo(3 + 4 + 12.5, 9);
  });

  it("an audit.json gives its best attacker to the report of the emulator it audited, found in a directory too; an audit of no report's emulator is refused", async () => {
    /** `scaleot audit`'s audit.json (offsite's runAudit result), the fields the reader uses. */
    const audit = (emulatorDir: string, attacker: number, metric = 'perplexity') => ({
      task: 'moby', taskType: 'lm', metric, higherIsBetter: metric === 'accuracy', attacker, best: 'finetune', attackers: { finetune: attacker }, details: [],
      budget: { steps: 150, batchSize: 8, seqLen: 256, tokens: 307_200 }, emulator: { dir: emulatorDir, method: 'scaleot', parameters: {}, sha256: 'x' }, adapterDir: null, modelDir: null,
    });
    const scaleot = await write('aud/s/report.json', cliReport('scaleot', [30, 80, 45, 35], { alpha: 0.5, beta: 0 }, 'moby', 28.5));
    const uniform = await write('aud/u/report.json', cliReport('uniform', [30, 90, 50, 40], { rule: 'uniform-index' }));
    const better = await write('aud/s-audit/audit.json', audit('/runs/scaleot/emulator', 27));
    const worse = await write('aud/s-audit2/audit.json', audit('/runs/scaleot/emulator/', 29));
    const onUniform = await write('aud/u-audit/audit.json', audit('/runs/uniform/emulator', 31));
    const r = await frontierFromReports([scaleot, uniform, better, worse, onUniform]);
    // The best attacker wins (lower perplexity); the report's own 28.5 is beaten by 27, not by 29.
    expect(r.points.map((p) => [p.label, p.attacker])).toEqual([['scaleot α=0.5 β=0', 27], ['uniform LayerDrop', 31]]);
    // The same from the directory, searched recursively.
    const fromDir = await frontierFromReports([join(dir, 'aud')]);
    expect(fromDir.points.map((p) => p.attacker)).toEqual([27, 31]);
    const stray = await write('aud2/audit.json', audit('/runs/elsewhere/emulator', 20));
    await expect(frontierFromReports([scaleot, stray])).rejects.toMatchObject({ code: 'BAD_REPORT', where: stray, message: expect.stringContaining('none of the reports read was tuned on') });
    const accuracy = await write('aud3/audit.json', audit('/runs/scaleot/emulator', 0.9, 'accuracy'));
    await expect(frontierFromReports([scaleot, accuracy])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('reports accuracy') });
  });

  it('refuses what it cannot chart with BAD_REPORT naming the file', async () => {
    const ppl = await write('m/ppl/report.json', cliReport('scaleot', [30, 80, 45, 35], { alpha: 0.5, beta: 0 }));
    const acc = await write('m/acc/report.json', { ...cliReport('scaleot', [0.6, 0.5, 0.55, 0.58], { alpha: 0.5, beta: 0 }, 'spam'), metric: 'accuracy', higherIsBetter: true });
    await expect(frontierFromReports([ppl, acc])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('reports accuracy') });
    const spamPpl = await write('m/spam/report.json', cliReport('scaleot', [30, 80, 45, 35], { alpha: 0.5, beta: 0 }, 'spam'));
    await expect(frontierFromReports([ppl, spamPpl])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('different tasks') });
    const stray = await write('m/stray.json', { hello: 'world' });
    await expect(frontierFromReports([stray])).rejects.toMatchObject({ code: 'BAD_REPORT', where: stray, message: expect.stringContaining('is not a report to plot') });
    const broken = await write('m/broken/report.json', { ...cliReport('scaleot', [30, 80, 45, 35], { alpha: 0.5, beta: 0 }), plug_in: 'n/a' });
    await expect(frontierFromReports([broken])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('report.plug_in is not a number') });
    await mkdir(join(dir, 'm/empty'), { recursive: true });
    await expect(frontierFromReports([join(dir, 'm/empty')])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('holds no frontier.json or report.json') });
    await expect(frontierFromReports([join(dir, 'm/missing.json')])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('does not exist') });
    await writeFile(join(dir, 'm/not-json.json'), '{');
    await expect(frontierFromReports([join(dir, 'm/not-json.json')])).rejects.toMatchObject({ code: 'BAD_REPORT', message: expect.stringContaining('not JSON') });
  });
});
