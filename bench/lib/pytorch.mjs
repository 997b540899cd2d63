// The PyTorch peer: Debian python3-torch with OpenBLAS (pthread build), installed with apt when
// missing, and a runner for tools/pytorch/gpt2_step.py.
import path from 'node:path';
import { repoRoot } from './common.mjs';
import { ensurePythonPeer, runPythonScript } from './python.mjs';

export const APT_PACKAGES = ['python3-torch', 'libopenblas0-pthread'];

/**
 * Makes sure `import torch` works and OpenBLAS is the BLAS (see ensurePythonPeer). Returns
 * { available, version (torch's), aptInstalled, blas, reason }.
 */
export function ensurePyTorch({ install = true } = {}) {
  return ensurePythonPeer({
    label: 'PyTorch peer',
    packages: APT_PACKAGES,
    probe: 'import numpy, torch; print(torch.__version__)',
    install,
  });
}

/** Runs tools/pytorch/gpt2_step.py; resolves to its JSON result (throws with its stderr tail on failure). */
export async function runPyTorchStep({ modelDir, batch, seq, seed, steps, warmup, reference, referenceKey, blasThreads = 2, torchThreads = 1 }) {
  const script = path.join(repoRoot, 'tools', 'pytorch', 'gpt2_step.py');
  const args = [
    script, '--model', modelDir, '--batch', String(batch), '--seq', String(seq), '--seed', String(seed),
    '--steps', String(steps), '--warmup', String(warmup), '--threads', String(torchThreads),
  ];
  if (reference) args.push('--reference', reference, '--reference-key', referenceKey);
  return runPythonScript(script, args, { OPENBLAS_NUM_THREADS: String(blasThreads), OMP_NUM_THREADS: String(torchThreads) });
}
