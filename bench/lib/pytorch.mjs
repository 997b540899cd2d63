// The PyTorch peer: Debian python3-torch with OpenBLAS (pthread build), installed with apt when
// missing, and a runner for tools/pytorch/gpt2_step.py.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './common.mjs';
import { ensurePythonPeer, PYTHON } from './python.mjs';

export const APT_PACKAGES = ['python3-torch', 'libopenblas0-pthread'];

/**
 * Makes sure `import torch` works and OpenBLAS is the BLAS (see ensurePythonPeer). Returns
 * { available, torchVersion, aptInstalled, blas, reason }.
 */
export async function ensurePyTorch({ install = true } = {}) {
  const status = await ensurePythonPeer({
    label: 'PyTorch peer',
    packages: APT_PACKAGES,
    probe: 'import numpy, torch; print(torch.__version__)',
    install,
  });
  return { ...status, torchVersion: status.version };
}

/** Runs tools/pytorch/gpt2_step.py; resolves to its JSON result (throws with its stderr tail on failure). */
export async function runPyTorchStep({ modelDir, batch, seq, seed, steps, warmup, reference, referenceKey, blasThreads = 2, torchThreads = 1 }) {
  const script = path.join(repoRoot, 'tools', 'pytorch', 'gpt2_step.py');
  const args = [
    script, '--model', modelDir, '--batch', String(batch), '--seq', String(seq), '--seed', String(seed),
    '--steps', String(steps), '--warmup', String(warmup), '--threads', String(torchThreads),
  ];
  if (reference) args.push('--reference', reference, '--reference-key', referenceKey);
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      env: { ...process.env, OPENBLAS_NUM_THREADS: String(blasThreads), OMP_NUM_THREADS: String(torchThreads) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop();
      if (code !== 0 || !last) {
        reject(new Error(`gpt2_step.py exited with ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`));
        return;
      }
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`gpt2_step.py printed no JSON result: ${last.slice(0, 200)}`));
      }
    });
  });
}
