import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stage1StepLog } from '@scaleot/scaleot';

/** What the operator sees of one base model's stage 1. */
export interface Stage1Progress {
  model: string;
  state: 'running' | 'done';
  step: number;
  totalSteps: number | null;
  lastLoss: number | null;
  log: Stage1StepLog[];
}

/**
 * Stage-1 progress per base model for the operator: the running rounds as the coordinator reports them
 * (in memory, step by step), and finished runs from their `stage1-log.jsonl` in storage.
 */
export class Stage1Monitor {
  private readonly running = new Map<string, { log: Stage1StepLog[]; totalSteps: number | null }>();

  constructor(private readonly storageDir: string) {}

  /** Records a finished round of `model`'s stage 1. */
  record(model: string, entry: Stage1StepLog, totalSteps?: number): void {
    const run = this.running.get(model) ?? { log: [], totalSteps: null };
    run.log = [...run.log.filter((e) => e.step < entry.step), entry];
    if (totalSteps !== undefined) run.totalSteps = totalSteps;
    this.running.set(model, run);
  }

  async snapshot(): Promise<Stage1Progress[]> {
    const out = new Map<string, Stage1Progress>();
    const root = join(this.storageDir, 'stage1');
    if (existsSync(root)) {
      for (const model of await readdir(root)) {
        const file = join(root, model, 'stage1-log.jsonl');
        if (!existsSync(file)) continue;
        const log = (await readFile(file, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Stage1StepLog);
        out.set(model, progressOf(model, 'done', log, log.length));
      }
    }
    for (const [model, run] of this.running) {
      if (out.has(model)) continue;
      out.set(model, progressOf(model, 'running', run.log, run.totalSteps));
    }
    return [...out.values()].sort((a, b) => a.model.localeCompare(b.model));
  }
}

function progressOf(model: string, state: Stage1Progress['state'], log: Stage1StepLog[], totalSteps: number | null): Stage1Progress {
  const last = log.at(-1);
  return { model, state, step: last?.step ?? 0, totalSteps, lastLoss: last?.loss ?? null, log };
}
