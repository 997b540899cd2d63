import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError } from './CheckpointError.js';

export const CONFIG_FILE_NAME = 'config.json';

/** A model directory's config.json as read: the JSON object and the file it came from. */
export interface RawModelConfig {
  raw: Record<string, unknown>;
  file: string;
}

/**
 * Reads `<dir>/config.json` as a JSON object (the one place that does). What the keys mean is the model
 * family's business (`@scaleot/model` normalises them); this only guarantees a readable object.
 */
export async function readConfigJson(dir: string): Promise<RawModelConfig> {
  const file = join(resolve(dir), CONFIG_FILE_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CheckpointError('NOT_A_CHECKPOINT', file, 'does not exist; a checkpoint directory needs config.json next to its weights (save_pretrained writes both).', { cause });
    }
    throw cause;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError('BAD_CONFIG', file, `is not valid JSON (${(cause as Error).message}); fix or re-export config.json.`, { cause });
  }
  return { raw: asConfigObject(raw, file), file };
}

/** The config must be a JSON object; anything else is BAD_CONFIG naming `where`. */
export function asConfigObject(raw: unknown, where: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError('BAD_CONFIG', where, 'config is not a JSON object; it must be a Hugging Face config.json.');
  }
  return raw as Record<string, unknown>;
}
