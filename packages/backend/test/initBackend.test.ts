import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { activeBackend, BackendError, initBackend, nativeGemmStatus, webGpuAdapterInfo } from '@scaleot/backend';

process.env.SCALEOT_LOG_LEVEL ??= 'silent';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const savedEnv = process.env.SCALEOT_BACKEND;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.SCALEOT_BACKEND;
  else process.env.SCALEOT_BACKEND = savedEnv;
});

describe('initBackend', () => {
  // This file runs in its own fork: nothing has selected a backend yet.
  it('reports no backend before the first call', () => {
    expect(activeBackend()).toBeUndefined();
  });

  it('rejects an unknown name with the valid ones', async () => {
    const error = await initBackend('webgl').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({ code: 'UNKNOWN_BACKEND', where: 'initBackend' });
    expect((error as Error).message).toMatch(/wasm, cpu, tensorflow, webgpu, auto/);
    expect(activeBackend()).toBeUndefined();
  });

  it('blames SCALEOT_BACKEND when the bad name comes from it', async () => {
    process.env.SCALEOT_BACKEND = 'gpu';
    await expect(initBackend()).rejects.toMatchObject({ code: 'UNKNOWN_BACKEND', where: 'SCALEOT_BACKEND' });
  });

  it('takes the name from SCALEOT_BACKEND', async () => {
    process.env.SCALEOT_BACKEND = 'cpu';
    await expect(initBackend()).resolves.toBe('cpu');
    expect(activeBackend()).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('defaults to wasm with the kernel fixes registered, and is idempotent', async () => {
    delete process.env.SCALEOT_BACKEND;
    await expect(initBackend()).resolves.toBe('wasm');
    expect(activeBackend()).toBe('wasm');
    const backend = tf.backend();
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc.name).toBe(
      nativeGemmStatus()?.gemm === 'openblas' ? 'batchMatMulNative' : 'batchMatMulWasm',
    );
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    await expect(initBackend('wasm')).resolves.toBe('wasm');
    expect(tf.backend()).toBe(backend);
  });

  it('serialises concurrent calls: the last one wins', async () => {
    const results = await Promise.all([initBackend('cpu'), initBackend('wasm'), initBackend('cpu')]);
    expect(results).toEqual(['cpu', 'wasm', 'cpu']);
    expect(activeBackend()).toBe('cpu');
    await initBackend('wasm');
    expect(activeBackend()).toBe('wasm');
  });

  it.skipIf(installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu'))(
    'explains how to install the native backend when it is absent, and keeps the current one',
    async () => {
      const error = await initBackend('tensorflow').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error).toMatchObject({ code: 'BACKEND_NOT_INSTALLED' });
      expect((error as Error).message).toMatch(/npm install -E @tensorflow\/tfjs-node/);
      expect(activeBackend()).toBe('wasm');
    },
  );

  it('auto takes a real GPU adapter (never a software one unless asked), else the native backend, else wasm', async () => {
    await initBackend('cpu');
    delete process.env.SCALEOT_WEBGPU_SOFTWARE;
    const native = installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');
    const chosen = await initBackend('auto');
    expect(activeBackend()).toBe(chosen);
    expect(tf.getBackend()).toBe(chosen);
    if (chosen === 'webgpu') {
      expect(webGpuAdapterInfo()?.software).toBe(false);
    } else {
      expect(chosen).toBe(native ? 'tensorflow' : 'wasm');
      // The failed webgpu attempt left nothing registered that tfjs could fall back on later.
      expect(tf.findBackendFactory('webgpu')).toBeNull();
    }
  });
});

