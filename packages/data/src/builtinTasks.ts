import { join, resolve } from 'node:path';
import { TaskError } from './TaskError.js';
import { loadTaskData, loadTaskSpec, validateTaskSpec, type Task, type TaskSpec } from './taskSpec.js';

/**
 * The fixture tasks, as the same specs a user would write. Their split files live in
 * `<dataRoot>/<name>/`; the CLI passes the data directory it ships, tests pass ../shared/fixtures/data.
 */
export const BUILTIN_TASK_SPECS: Readonly<Record<string, TaskSpec>> = Object.freeze({
  moby: { version: 1, name: 'moby', type: 'lm', train: 'train.jsonl', test: 'test.jsonl', textField: 'text' },
  spam: {
    version: 1,
    name: 'spam',
    type: 'classification',
    train: 'train.jsonl',
    test: 'test.jsonl',
    promptTemplate: 'Subject: {subject}\n\n{body}',
    suffix: '\n\nLabel:',
    candidates: { ham: ' ham', spam: ' spam' },
    labelField: 'label',
  },
  // The model owner's public corpus: pretraining and emulator distillation, evaluated on its val split.
  sotu: { version: 1, name: 'sotu', type: 'lm', train: 'train.jsonl', test: 'val.jsonl', textField: 'text' },
});

export function builtinTaskNames(): string[] {
  return Object.keys(BUILTIN_TASK_SPECS);
}

export function isBuiltinTask(name: string): boolean {
  return Object.hasOwn(BUILTIN_TASK_SPECS, name);
}

/** Loads a built-in task from `<dataRoot>/<name>/`, validated exactly like a user's spec. */
export async function builtinTask(name: string, dataRoot: string): Promise<Task> {
  if (!isBuiltinTask(name)) {
    throw new TaskError(`is not a built-in task (built in: ${builtinTaskNames().join(', ')}); pass a path to a task spec instead`, { file: `<builtin:${name}>`, field: 'name' });
  }
  const specFile = `<builtin:${name}>`;
  const spec = validateTaskSpec(structuredClone(BUILTIN_TASK_SPECS[name]), specFile);
  return loadTaskData(spec, specFile, join(resolve(dataRoot), name));
}

/**
 * A task named on a command line: a built-in name (`moby`, `spam`, `sotu`) or a path to a spec file or
 * directory. Names win over same-named relative paths; write `./moby` for a directory called moby.
 */
export async function loadTask(nameOrPath: string, dataRoot: string): Promise<Task> {
  return isBuiltinTask(nameOrPath) ? builtinTask(nameOrPath, dataRoot) : loadTaskSpec(nameOrPath);
}
