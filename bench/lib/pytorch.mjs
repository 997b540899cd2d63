// The PyTorch peer: Debian python3-torch with OpenBLAS (pthread build), installed with apt when
// missing, and a runner for tools/pytorch/gpt2_step.py.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { log, repoRoot } from './common.mjs';

export const APT_PACKAGES = ['python3-torch', 'libopenblas0-pthread'];
const BLAS_ALTERNATIVE = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';
// Debian's python3-torch is built for Debian's python; a `python3` earlier on PATH (pyenv, venv)
// would not see it. SCALEOT_BENCH_PYTHON overrides.
export const PYTHON = process.env.SCALEOT_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function torchImports() {
  const probe = spawnSync(PYTHON, ['-c', 'import numpy, torch; print(torch.__version__)'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : null;
}

function debInstalled(name) {
  const probe = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
  return probe.status === 0 && probe.stdout.includes('install ok installed');
}

/** Runs a command with its output echoed to stderr; resolves to { code, output }. */
function runLogged(command, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const forward = (chunk) => {
      output += chunk;
      process.stderr.write(chunk);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    child.on('error', (error) => resolve({ code: -1, output: `${output}\n${error.message}` }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Names from apt's "The following NEW packages will be installed:" block. */
function newPackages(aptOutput) {
  const match = aptOutput.match(/The following NEW packages will be installed:\n((?:[ \t]+.*\n)+)/);
  return match ? match[1].trim().split(/\s+/) : [];
}

/**
 * Makes sure `import torch` works and OpenBLAS is the BLAS. Installs the Debian packages with apt
 * when missing (and says so). Never throws: returns { available, torchVersion, aptInstalled,
 * blas, reason }.
 */
export async function ensurePyTorch({ install = true } = {}) {
  const missing = APT_PACKAGES.filter((name) => !debInstalled(name));
  let torchVersion = missing.length === 0 ? torchImports() : null;
  const status = { available: false, torchVersion: null, aptInstalled: [], blas: null, reason: null };
  if (missing.length === 0 && torchVersion) {
    log(`PyTorch peer: python3-torch ${torchVersion} and libopenblas0-pthread already installed`);
  } else {
    const toInstall = missing.length > 0 ? missing : ['python3-torch'];
    if (!install) {
      status.reason = `missing ${toInstall.join(', ')} and --no-install was given`;
      return status;
    }
    if (process.getuid?.() !== 0) {
      status.reason = `missing ${toInstall.join(', ')}; run \`sudo apt-get install -y ${APT_PACKAGES.join(' ')}\``;
      return status;
    }
    log(`PyTorch peer: ${toInstall.join(', ')} not installed; INSTALLING with \`apt-get install -y ${APT_PACKAGES.join(' ')}\``);
    const aptEnv = { DEBIAN_FRONTEND: 'noninteractive' };
    // Another apt on the machine holds the dpkg lock for minutes at a time: wait for it.
    const lockWait = ['-o', 'DPkg::Lock::Timeout=900'];
    let apt = await runLogged('apt-get', [...lockWait, 'install', '-y', ...APT_PACKAGES], aptEnv);
    if (apt.code !== 0 && !/Could not get lock/.test(apt.output)) {
      log('PyTorch peer: apt-get install failed; running `apt-get update` once and retrying');
      await runLogged('apt-get', [...lockWait, 'update'], aptEnv);
      apt = await runLogged('apt-get', [...lockWait, 'install', '-y', ...APT_PACKAGES], aptEnv);
    }
    if (apt.code !== 0) {
      status.reason = `apt-get install ${APT_PACKAGES.join(' ')} failed (exit ${apt.code})`;
      return status;
    }
    status.aptInstalled = newPackages(apt.output);
    log(`PyTorch peer: apt installed ${status.aptInstalled.length} new packages: ${status.aptInstalled.join(' ')}`);
    torchVersion = torchImports();
    if (!torchVersion) {
      status.reason = `python3-torch is installed but \`${PYTHON} -c 'import torch'\` fails`;
      return status;
    }
  }
  status.torchVersion = torchVersion;
  status.blas = existsSync(BLAS_ALTERNATIVE) ? realpathSync(BLAS_ALTERNATIVE) : null;
  if (!status.blas?.includes('openblas')) {
    log(`PyTorch peer: WARNING libblas.so.3 resolves to ${status.blas}, not OpenBLAS; PyTorch will be ~10x slower than its best`);
  }
  status.available = true;
  return status;
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
