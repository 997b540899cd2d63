import { createHash } from 'node:crypto';
import type { EmulatorManifest } from './manifest.js';

/** JSON with object keys sorted at every level: the same manifest always hashes the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * SHA-256 of an emulator's manifest (canonical JSON). Adapters record it (`parameters.emulator.sha256`)
 * so whoever receives an adapter can check it was tuned on the emulator they handed out: the manifest
 * holds the source model's hash, the layer map, the compression and the build time.
 */
export function emulatorFingerprint(manifest: EmulatorManifest): string {
  const { format, version, sourceModel, method, parameters, layerMap, adapter, compression, createdAt } = manifest;
  return createHash('sha256').update(canonicalJson({ format, version, sourceModel, method, parameters, layerMap, adapter, compression, createdAt })).digest('hex');
}
