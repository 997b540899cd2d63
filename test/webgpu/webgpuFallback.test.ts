// A webgpu start that cannot succeed falls back to wasm with exactly one logged line, and tfjs then
// reports the backend actually running. Child processes: each needs an engine nobody touched.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function runChild(env: Record<string, string>): { result: Record<string, unknown>; stderr: string } {
  const script = `
    import * as tf from '@tensorflow/tfjs';
    import { initBackend, webGpuAdapterInfo } from '@scaleot/backend';
    const chosen = await initBackend();
    const x = tf.add(tf.tensor1d([1, 2]), 1);
    console.log(JSON.stringify({ chosen, backend: tf.getBackend(), webgpuRegistered: tf.findBackendFactory('webgpu') !== null,
      adapter: webGpuAdapterInfo() ?? null, sum: Array.from(await x.data()) }));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: process.cwd(),
    env: { ...process.env, SCALEOT_LOG_LEVEL: 'info', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(child.status, child.stderr).toBe(0);
  const last = child.stdout.trim().split('\n').at(-1)!;
  return { result: JSON.parse(last) as Record<string, unknown>, stderr: `${child.stderr}${child.stdout}` };
}

describe('webgpu start failures', () => {
  it('SCALEOT_BACKEND=webgpu without any usable adapter falls back to wasm with one logged line', () => {
    // An instance that cannot exist: the same path as a GPU node without a Vulkan driver.
    const { result, stderr } = runChild({ SCALEOT_BACKEND: 'webgpu', SCALEOT_WEBGPU_FLAGS: 'backend=no-such-backend' });
    expect(result).toMatchObject({ chosen: 'wasm', backend: 'wasm', webgpuRegistered: false, adapter: null, sum: [2, 3] });
    const lines = stderr.split('\n').filter((l) => l.includes('WebGPU unavailable'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WEBGPU_NO_ADAPTER/);
  });

  it('SCALEOT_BACKEND=auto never runs on a software adapter unless SCALEOT_WEBGPU_SOFTWARE=1', () => {
    const { result } = runChild({ SCALEOT_BACKEND: 'auto', SCALEOT_WEBGPU_SOFTWARE: '' });
    if (result.chosen === 'webgpu') expect(result.adapter).toMatchObject({ software: false });
    else expect(result).toMatchObject({ backend: result.chosen, webgpuRegistered: false, adapter: null });
    expect(result.sum).toEqual([2, 3]);
  });
});
