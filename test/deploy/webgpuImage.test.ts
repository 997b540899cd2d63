import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INFRA, finalEnv, parseDockerfile, read, stageChain } from './deployChecks.js';

describe('the webgpu GPU worker image', () => {
  const text = read(join(INFRA, 'docker', 'worker-webgpu.Dockerfile'));
  const stages = parseDockerfile(text);
  const final = stageChain(stages).flatMap((s) => s.instructions);
  const env = finalEnv(stages);

  it('runs SCALEOT_BACKEND=webgpu with the graphics driver capability (Vulkan) and the compute ones', () => {
    expect(env.SCALEOT_BACKEND).toBe('webgpu');
    expect(env.NVIDIA_DRIVER_CAPABILITIES?.split(',').sort()).toEqual(['compute', 'graphics', 'utility']);
    expect(env.NVIDIA_VISIBLE_DEVICES).toBe('all');
  });

  it('installs the Vulkan loader and an NVIDIA ICD manifest in the runtime stage', () => {
    const runs = final.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /apt-get install[^&]*\blibvulkan1\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\/etc\/vulkan\/icd\.d\/nvidia_icd\.json/.test(r) && /libGLX_nvidia\.so\.0/.test(r))).toBe(true);
  });

  it('checks that Dawn and tfjs-backend-webgpu 4.22.0 came from npm, with no CUDA base', () => {
    expect(text).toMatch(/test -f node_modules\/webgpu\/dist\/linux-x64\/dawn\.node/);
    expect(text).toMatch(/tfjs-backend-webgpu\/package\.json'\)\.version"\)" = 4\.22\.0/);
    expect(stageChain(stages)[0].base).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
  });
});
