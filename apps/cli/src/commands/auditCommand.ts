import { atomicWriteFile, atomicWriteJson, InvalidInputError } from '@scaleot/core';
import type { AttackerName } from '@scaleot/offsite';
import { Command, InvalidArgumentError } from 'commander';
import { join, resolve } from 'node:path';
import { importOffsite, runCommand, withGlobalOptions, type GlobalOptions } from '../cliSupport.js';
import { evalSettings, withEvalFlags, type EvalFlags } from '../evalFlags.js';
import { refuseExistingOutput } from '../outputGuard.js';
import { SHIPPED_DATA_DIR } from '../paths.js';
import { trainHyper, withThreadsFlag, withTrainFlags, type TrainFlags } from '../trainFlags.js';

interface AuditFlags extends GlobalOptions, TrainFlags, EvalFlags {
  emulator: string;
  task: string;
  adapter?: string;
  model?: string;
  attackers?: AttackerName[];
  out: string;
  dataRoot: string;
  threads?: number;
  overwrite?: boolean;
}

function attackerList(value: string): AttackerName[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => n !== 'finetune' && n !== 'distill');
  if (names.length === 0 || bad.length > 0) throw new InvalidArgumentError(`expected a comma-separated list of finetune, distill; got "${value}"`);
  return names as AttackerName[];
}

export function auditCommand(): Command {
  const cmd = new Command('audit')
    .summary('emulator privacy audit: what a data owner can get from the emulator itself at the tuning budget')
    .description(
      [
        'What a data owner who wants the model itself, not only a tuned adapter, can get from the emulator with their own data and the compute budget of the adapter tuning (the same --steps x --batch x --seq-len). Two attackers, each training EVERY emulator weight (embeddings, adapter blocks, kept middle blocks, harmonizers, SRC-compressed matrices) through the same training loop as `tune`, starting from the emulator with the data owner\'s tuned adapter in it (--adapter) or as shipped:',
        '  finetune: next-token loss on the task\'s train split;',
        '  distill:  KL to the plug-in\'s next-token distributions (full model + the tuned adapter) on the same training text.',
        'Each attacked emulator is evaluated with the task\'s full protocol (as `eval` and `report`); the best one is "attacker", the honest privacy number to set beside the plug-in.',
        'The attackers get only what a data owner legitimately holds (the emulator, their tuned adapter, their own data) plus, for distill, the plug-in\'s observable outputs: --model is read only to serve those logits, as the model owner\'s plug-in service would; none of its weights reach the attacked emulator.',
        'Writes audit.json and audit.md to --out; with --json prints {"task","metric","attacker","best","attackers":{"finetune","distill"},...} as the last line.',
      ].join('\n'),
    )
    .requiredOption('--emulator <dir>', 'emulator artifact under audit')
    .option('--task <name|path>', 'built-in task (moby, spam) or a task spec file/dir', 'moby')
    .option('--adapter <dir>', "the data owner's tuned adapter for this emulator (the attackers start from it; distill needs it)")
    .option('--model <dir>', 'the full model the emulator was cut from: serves the plug-in\'s logits to the distill attacker (needed for distill)')
    .option('--attackers <list>', 'attackers to run: finetune,distill (default: both when --model and --adapter are given, else finetune)', attackerList)
    .option('--out <dir>', 'where audit.json and audit.md go', 'runs/audit')
    .option('--data-root <dir>', 'where built-in tasks live', SHIPPED_DATA_DIR)
    .option('--overwrite', 'replace an earlier audit in --out');
  return withGlobalOptions(withEvalFlags(withThreadsFlag(withTrainFlags(cmd)))).action(async (flags: AuditFlags) => {
    await runCommand('audit', flags, async (log) => {
      if (flags.loraRank !== undefined || flags.loraAlpha !== undefined) {
        throw new InvalidInputError('the audit\'s attackers train every emulator weight; LoRA does not apply (drop --lora-rank/--lora-alpha)', { where: '--lora-rank' });
      }
      refuseExistingOutput(flags.out, { overwrite: flags.overwrite });
      const { initBackend } = await import('@scaleot/backend');
      const { auditEmulator } = await importOffsite();
      await initBackend(flags.backend);
      const outDir = resolve(flags.out);
      const audit = await auditEmulator({
        emulatorDir: flags.emulator,
        task: flags.task,
        dataRoot: flags.dataRoot,
        adapterDir: flags.adapter,
        modelDir: flags.model,
        attackers: flags.attackers,
        hyper: trainHyper(flags),
        eval: evalSettings(flags),
        threads: flags.threads,
        logger: log,
      });
      const fmt = (v: number) => (audit.metric === 'accuracy' ? `${(100 * v).toFixed(1)}%` : v.toFixed(2));
      const markdown = [
        `| attacker | objective | start | trained parameters (outside the adapter) | first loss | final loss | ${audit.metric} |`,
        '|---|---|---|---:|---:|---:|---:|',
        ...audit.details.map((d) => `| ${d.name}${d.name === audit.best ? ' (best)' : ''} | ${d.objective} | ${d.start} | ${d.trainedParameters} (${d.nonAdapterParameters}) | ${d.firstLoss?.toFixed(4) ?? '—'} | ${d.finalLoss?.toFixed(4) ?? '—'} | ${fmt(d.value)} |`),
        '',
        `Task ${audit.task}; budget ${audit.budget.steps} steps × ${audit.budget.batchSize} rows × ${audit.budget.seqLen} tokens (${audit.budget.tokens} tokens, as the adapter tuning); emulator ${audit.emulator.method} ${JSON.stringify(audit.emulator.parameters.alpha !== undefined ? { alpha: audit.emulator.parameters.alpha, beta: audit.emulator.parameters.beta } : {})}; protocol v${audit.protocolVersion}; ${audit.seconds.toFixed(0)} s.`,
        '',
      ].join('\n');
      const result = { ...audit, outDir };
      await atomicWriteJson(join(outDir, 'audit.json'), result);
      await atomicWriteFile(join(outDir, 'audit.md'), markdown);
      return { result, human: `${markdown}\nbest attacker: ${audit.best} ${fmt(audit.attacker)} -> ${outDir}` };
    });
  });
}
