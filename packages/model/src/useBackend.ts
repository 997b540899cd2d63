import { initBackend, type BackendName } from '@scaleot/backend';

export type BackendChoice = BackendName;

/** Selects a backend through `@scaleot/backend` (which registers the wasm kernel fixes); idempotent. */
export async function useBackend(name?: BackendChoice): Promise<string> {
  return initBackend(name);
}
