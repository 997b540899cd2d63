import { BackendError } from '../BackendError.js';
import type { WebGpuAdapterSummary } from './WebGpuAdapterSummary.js';

/** How `openDawnDevice` may search; read from the environment by `webGpuOptionsFromEnv`. */
export interface DawnSearchOptions {
  /** Accept a software adapter (default false: only a real GPU; `SCALEOT_WEBGPU_SOFTWARE=1`). */
  allowSoftware?: boolean;
  /**
   * Dawn toggles for one explicit instance, e.g. `['backend=vulkan']` (default: none, which tries
   * Dawn's default instance and then, when software is allowed, its OpenGL ES path;
   * `SCALEOT_WEBGPU_FLAGS=backend=vulkan,...`).
   */
  dawnFlags?: string[];
}

export interface DawnDevice {
  gpu: GPU;
  device: GPUDevice;
  adapterInfo: GPUAdapterInfo;
  summary: WebGpuAdapterSummary;
}

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|software rasterizer/i;

/** Reads `SCALEOT_WEBGPU_SOFTWARE` and `SCALEOT_WEBGPU_FLAGS`. */
export function webGpuOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DawnSearchOptions {
  const software = (env.SCALEOT_WEBGPU_SOFTWARE ?? '').trim().toLowerCase();
  const flags = (env.SCALEOT_WEBGPU_FLAGS ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return {
    allowSoftware: software === '1' || software === 'true' || software === 'yes',
    dawnFlags: flags.length > 0 ? flags : undefined,
  };
}

function summarise(adapter: GPUAdapter, dawnFlags: string[], featureLevel: 'core' | 'compatibility'): WebGpuAdapterSummary {
  const info = adapter.info;
  const text = [info.vendor, info.architecture, info.device, info.description].join(' ');
  const fallback = (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    dawnFlags,
    featureLevel,
    software: fallback || SOFTWARE_ADAPTER.test(text),
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  };
}

interface Candidate {
  flags: string[];
  featureLevel: 'core' | 'compatibility';
}

function candidates(options: DawnSearchOptions): Candidate[] {
  if (options.dawnFlags !== undefined) {
    const gles = options.dawnFlags.some((f) => /^backend=(opengles|opengl|gl)/i.test(f));
    return gles
      ? [{ flags: options.dawnFlags, featureLevel: 'compatibility' }]
      : [{ flags: options.dawnFlags, featureLevel: 'core' }, { flags: options.dawnFlags, featureLevel: 'compatibility' }];
  }
  const list: Candidate[] = [{ flags: [], featureLevel: 'core' }];
  // Debian bookworm's lavapipe (Mesa 22) lacks what Dawn's Vulkan backend requires; its llvmpipe
  // OpenGL ES through EGL works in Dawn's compatibility mode. Only ever a software adapter here.
  if (options.allowSoftware === true) list.push({ flags: ['backend=opengles'], featureLevel: 'compatibility' });
  return list;
}

/**
 * Opens a WebGPU device through Dawn's Node binding (`webgpu` on npm): Dawn's default instance
 * (Vulkan on Linux) first, preferring a high-performance adapter; a software adapter only when
 * `allowSoftware`. Throws `WEBGPU_NO_ADAPTER` naming everything tried.
 */
export async function openDawnDevice(options: DawnSearchOptions = {}): Promise<DawnDevice> {
  let dawn: { create: (flags: string[]) => GPU; globals: object };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch (error) {
    throw new BackendError(
      'BACKEND_LOAD_FAILED',
      `the webgpu package (Dawn's Node binding) failed to load: ${(error as Error).message}; it ships prebuilt ` +
        'dawn.node for linux-x64/arm64, darwin and win32: reinstall with npm ci',
      { where: 'initBackend', cause: error },
    );
  }
  // tfjs-backend-webgpu refers to GPUBufferUsage, GPUBuffer, … as globals, as in a browser.
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  const tried: string[] = [];
  for (const candidate of candidates(options)) {
    if (candidate.flags.some((f) => /^backend=(opengles|opengl|gl)/i.test(f))) {
      // Mesa's EGL needs no display server on its surfaceless platform.
      process.env.EGL_PLATFORM ??= 'surfaceless';
    }
    const label = `Dawn [${candidate.flags.join(',') || 'default'}] featureLevel ${candidate.featureLevel}`;
    let adapter: GPUAdapter | null;
    let gpu: GPU;
    try {
      gpu = dawn.create(candidate.flags);
      const request: GPURequestAdapterOptions & { featureLevel?: string } = { powerPreference: 'high-performance' };
      if (candidate.featureLevel === 'compatibility') request.featureLevel = 'compatibility';
      adapter = await gpu.requestAdapter(request);
    } catch (error) {
      tried.push(`${label}: ${(error as Error).message}`);
      continue;
    }
    if (adapter === null) {
      tried.push(`${label}: no adapter`);
      continue;
    }
    const summary = summarise(adapter, candidate.flags, candidate.featureLevel);
    if (summary.software && options.allowSoftware !== true) {
      tried.push(`${label}: only the software adapter "${summary.device}" (set SCALEOT_WEBGPU_SOFTWARE=1 to accept it)`);
      continue;
    }
    const limits = adapter.limits;
    const requiredFeatures: GPUFeatureName[] = [];
    if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    try {
      // The limits tfjs-backend-webgpu asks for in a browser: the adapter's own maxima.
      const device = await adapter.requestDevice({
        requiredFeatures,
        requiredLimits: {
          maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
          maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
        },
      });
      summary.maxStorageBufferBindingSize = device.limits.maxStorageBufferBindingSize;
      summary.maxBufferSize = device.limits.maxBufferSize;
      return { gpu, device, adapterInfo: adapter.info, summary };
    } catch (error) {
      tried.push(`${label}: requestDevice failed: ${(error as Error).message}`);
    }
  }
  throw new BackendError(
    'WEBGPU_NO_ADAPTER',
    `no usable WebGPU adapter (${tried.join('; ')}). A GPU node needs the Vulkan loader (libvulkan1) and the ` +
      "vendor's Vulkan ICD (NVIDIA: NVIDIA_DRIVER_CAPABILITIES must include graphics); see docs/gpu.md",
    { where: 'initBackend' },
  );
}
