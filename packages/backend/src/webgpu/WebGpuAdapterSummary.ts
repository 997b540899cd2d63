/** What the chosen WebGPU adapter is; logged at start and reported by `webgpuAdapterInfo()`. */
export interface WebGpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn toggles the instance was created with (`backend=opengles` for the GLES path). */
  dawnFlags: string[];
  /** `compatibility` for Dawn's GLES path, else `core`. */
  featureLevel: 'core' | 'compatibility';
  /** A CPU rasteriser (llvmpipe, lavapipe, SwiftShader): correct but ~3–5 GFLOP/s. */
  software: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}
