import { existsSync, readFileSync } from 'node:fs';
import { evalLimitsSchema, privacyPresetSchema, s, stage1HyperSchema, trainHyperSchema, type Infer, type PayloadIssue, type Schema } from '@scaleot/queue';
import { DEFAULT_STAGE1 } from '@scaleot/scaleot';
import { ClusterError } from './ClusterError.js';

/** Names of base models, tenants and requests: what may become one path segment in storage. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const name = (what: string) => s.string({ maxLength: 64, pattern: NAME_PATTERN, patternName: `${what} (letters, digits and . _ -, starting with a letter or digit, at most 64)` });

/**
 * `POST /v1/requests`: the one definition of a tuning request. Fastify's route schema is its `json`
 * (unknown keys rejected, no coercion); `Coordinator.createRequest` checks the same schema for callers
 * that do not come through HTTP.
 */
export const createRequestSchema = s.object({
  baseModel: s.describe(name('a model name'), 'base model in the cluster\'s storage (models/<name>)'),
  preset: privacyPresetSchema,
  task: s.describe(name('a task name'), 'name of a built-in task (e.g. "moby")'),
  managedTuning: s.optional(s.describe(s.boolean(), 'let the cluster tune the adapter on the task (else download, tune, upload)')),
  tuneHyper: s.optional(s.describe(trainHyperSchema, 'training settings of managed tuning and the full fine-tuning baseline')),
});
export type CreateRequestContract = Infer<typeof createRequestSchema>;

/** `SCALEOT_COORDINATOR_CONFIG`: stage-1, tuning and evaluation settings of the coordinator. */
export const coordinatorSettingsSchema = s.object({
  stage1: s.optional(stage1HyperSchema),
  shards: s.optional(s.int({ min: 1, max: 4096 })),
  corpus: s.optional(name('a corpus name')),
  dataRoot: s.optional(s.string({ maxLength: 4096 })),
  maxDocuments: s.optional(s.int({ min: 1, max: 1 << 30 })),
  tune: s.optional(trainHyperSchema),
  eval: s.optional(evalLimitsSchema),
  fullFineTune: s.optional(s.boolean()),
});
export type CoordinatorSettings = Infer<typeof coordinatorSettingsSchema>;

/** `$.preset.alpha` → `preset.alpha`: the field as a client names it. */
function fieldOf(path: string): string {
  return path.replace(/^\$\.?/, '') || '(body)';
}

/** Issues of `value` against `schema` (empty when it conforms). */
export function contractIssues(schema: Schema<unknown>, value: unknown): PayloadIssue[] {
  const issues: PayloadIssue[] = [];
  schema.check(value, '$', issues);
  return issues.map((i) => ({ path: fieldOf(i.path), message: i.message }));
}

/** `value` typed by `schema`, or VALIDATION_FAILED naming the first field at fault (all of them in the message). */
export function checkContract<T>(schema: Schema<T>, value: unknown, what: string): T {
  const issues = contractIssues(schema as Schema<unknown>, value);
  if (issues.length > 0) {
    throw new ClusterError('VALIDATION_FAILED', `${what}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, { where: issues[0].path });
  }
  return value as T;
}

/**
 * A JSON settings file checked against its schema: unknown keys, wrong types and values out of range
 * are BAD_SETTINGS naming the file's variable and the field. The message never echoes the file's content.
 */
export function readSettingsFile<T>(schema: Schema<T>, file: string, variable: string): T {
  if (!existsSync(file)) throw new ClusterError('BAD_SETTINGS', `${file} does not exist`, { where: variable });
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new ClusterError('BAD_SETTINGS', `${file} is not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}`, { where: variable, cause });
  }
  const issues = contractIssues(schema as Schema<unknown>, parsed);
  if (issues.length > 0) throw new ClusterError('BAD_SETTINGS', `${file}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, { where: variable });
  return parsed as T;
}

/** Steps of the coordinator's stage 1: the settings' own, or stage 1's default (progress reports this as the total). */
export function stage1Steps(settings: CoordinatorSettings): number {
  return settings.stage1?.steps ?? DEFAULT_STAGE1.steps;
}
