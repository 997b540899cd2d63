import { resolve } from 'node:path';
import { loadTask, type Task } from '@scaleot/data';

/** A task given by built-in name (`moby`, `spam`, `sotu`), spec path, or already loaded. */
export type TaskInput = string | Task;

/** Loads a task; built-in names read `<dataRoot>/<name>/` (default dataRoot: ./data, the shipped demo data). */
export async function resolveTask(task: TaskInput, dataRoot?: string): Promise<Task> {
  if (typeof task !== 'string') return task;
  return loadTask(task, resolve(dataRoot ?? 'data'));
}
