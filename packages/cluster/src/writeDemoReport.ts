import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { atomicWriteFile, atomicWriteJson } from '@scaleot/core';
import type { Stage1StepLog } from '@scaleot/scaleot';
import type { ImportanceBlock } from '@scaleot/plots';
import type { FiveNumbers, PrivacyPreset } from './Coordinator.js';
import { evaluationProtocol } from './evaluationProtocol.js';
import { explainedReport } from './explainedReport.js';

const REPO_ROOT = resolve(import.meta.dirname, '../../..');

/** What produced a set of numbers: the project, the runtime, tfjs and the backend. */
export async function runVersions(): Promise<Record<string, string>> {
  const require = createRequire(import.meta.url);
  const project = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  return {
    scaleot: project.version,
    node: process.version,
    '@tensorflow/tfjs': (require('@tensorflow/tfjs/package.json') as { version: string }).version,
    backend: process.env.SCALEOT_BACKEND ?? 'wasm',
  };
}

export interface DemoReportInput {
  outDir: string;
  mode: string;
  reason?: string;
  task: string;
  baseModel: string;
  modelDir: string;
  dataRoot: string;
  reports: { preset: PrivacyPreset; request: string; report: FiveNumbers }[];
  stage1: { scores: number[]; importance: ImportanceBlock[]; log: Stage1StepLog[]; hyper: Record<string, unknown> };
  tune: Record<string, unknown>;
  evalHyper: Record<string, number>;
  fullFineTune: boolean;
}

/** The demo's report.md, report.html (charts inline), report.json and plots/*.svg. */
export async function writeDemoReport(input: DemoReportInput): Promise<{ reportFile: string; htmlFile: string; plots: string[] }> {
  const protocol = await evaluationProtocol(input.modelDir, input.task, input.dataRoot, input.evalHyper);
  const versions = await runVersions();
  const explained = await explainedReport({
    title: `ScaleOT demo: ${input.task} on ${input.baseModel}`,
    baseModel: input.baseModel,
    emulators: input.reports,
    protocol,
    intro: [
      `Run ${input.mode === 'cluster' ? 'as a local cluster (a coordinator and worker processes over Redis)' : `in one process${input.reason ? ` (${input.reason})` : ''}`}. ` +
        'The model owner ran ScaleOT stage 1 once, built one emulator per privacy preset; a data owner had the adapters tuned on their task (managed tuning); the model owner plugged them in.',
    ],
    versions: { ...versions, 'evaluation protocol': protocol.protocolVersion },
    hyperParameters: { 'stage 1': input.stage1.hyper, 'adapter tuning (and full fine-tuning)': input.tune, evaluation: input.evalHyper, 'full fine-tuning baseline': { run: input.fullFineTune } },
    stage1: { importance: input.stage1.importance, log: input.stage1.log },
  });
  const reportFile = join(input.outDir, 'report.md');
  const htmlFile = join(input.outDir, 'report.html');
  const plots: string[] = [];
  for (const c of explained.charts) {
    const path = join(input.outDir, c.file);
    await atomicWriteFile(path, c.svg);
    plots.push(path);
  }
  await atomicWriteFile(reportFile, explained.markdown);
  await atomicWriteFile(htmlFile, explained.html);
  await atomicWriteJson(join(input.outDir, 'report.json'), {
    mode: input.mode,
    reason: input.reason ?? null,
    task: input.task,
    baseModel: input.baseModel,
    protocol,
    versions,
    stage1: { scores: input.stage1.scores, hyper: input.stage1.hyper },
    reports: input.reports,
  });
  return { reportFile, htmlFile, plots };
}
