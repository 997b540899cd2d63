// The PyTorch peer: Debian python3-torch with OpenBLAS (pthread build), installed with apt when
// missing (the shipped-loop peers run through lib/peers.mjs).
import { ensurePythonPeer } from './python.mjs';

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
