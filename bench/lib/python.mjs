// Python reference peers (PyTorch, NumPy) from Debian packages with OpenBLAS (pthread build),
// installed with apt when missing: the only way to get them on a machine whose internet is the npm
// registry and Debian apt.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { log } from './common.mjs';

const BLAS_ALTERNATIVE = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';
// Debian's python3-* packages are built for Debian's python; a `python3` earlier on PATH (pyenv,
// venv) would not see them. SCALEOT_BENCH_PYTHON overrides.
export const PYTHON = process.env.SCALEOT_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

/** The probe's stdout (e.g. a version) when it runs, else null. */
function probeVersion(probe) {
  const run = spawnSync(PYTHON, ['-c', probe], { encoding: 'utf8' });
  return run.status === 0 ? run.stdout.trim() : null;
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
 * Makes sure `PYTHON -c probe` works with the Debian `packages` installed and OpenBLAS as the BLAS.
 * Installs the packages with apt when missing (and says so). Never throws: returns
 * { available, version (the probe's output), aptInstalled, blas, reason }.
 */
export async function ensurePythonPeer({ label, packages, probe, install = true }) {
  const missing = packages.filter((name) => !debInstalled(name));
  let version = missing.length === 0 ? probeVersion(probe) : null;
  const status = { available: false, version: null, aptInstalled: [], blas: null, reason: null };
  if (missing.length === 0 && version) {
    log(`${label}: ${packages.join(', ')} already installed (${version})`);
  } else {
    const toInstall = missing.length > 0 ? missing : packages.slice(0, 1);
    if (!install) {
      status.reason = `missing ${toInstall.join(', ')} and --no-install was given`;
      return status;
    }
    if (process.getuid?.() !== 0) {
      status.reason = `missing ${toInstall.join(', ')}; run \`sudo apt-get install -y ${packages.join(' ')}\``;
      return status;
    }
    log(`${label}: ${toInstall.join(', ')} not installed; INSTALLING with \`apt-get install -y ${packages.join(' ')}\``);
    const aptEnv = { DEBIAN_FRONTEND: 'noninteractive' };
    // Another apt on the machine holds the dpkg lock for minutes at a time: wait for it.
    const lockWait = ['-o', 'DPkg::Lock::Timeout=900'];
    let apt = await runLogged('apt-get', [...lockWait, 'install', '-y', ...packages], aptEnv);
    if (apt.code !== 0 && !/Could not get lock/.test(apt.output)) {
      log(`${label}: apt-get install failed; running \`apt-get update\` once and retrying`);
      await runLogged('apt-get', [...lockWait, 'update'], aptEnv);
      apt = await runLogged('apt-get', [...lockWait, 'install', '-y', ...packages], aptEnv);
    }
    if (apt.code !== 0) {
      status.reason = `apt-get install ${packages.join(' ')} failed (exit ${apt.code})`;
      return status;
    }
    status.aptInstalled = newPackages(apt.output);
    log(`${label}: apt installed ${status.aptInstalled.length} new packages: ${status.aptInstalled.join(' ')}`);
    version = probeVersion(probe);
    if (!version) {
      status.reason = `${packages.join(', ')} installed but \`${PYTHON} -c '${probe}'\` fails`;
      return status;
    }
  }
  status.version = version;
  status.blas = existsSync(BLAS_ALTERNATIVE) ? realpathSync(BLAS_ALTERNATIVE) : null;
  if (!status.blas?.includes('openblas')) {
    log(`${label}: WARNING libblas.so.3 resolves to ${status.blas}, not OpenBLAS; the peer will be ~10x slower than its best`);
  }
  status.available = true;
  return status;
}

/**
 * Runs a Python script with PYTHON (its stderr echoed); resolves to the JSON object on the last
 * stdout line, rejects with the stderr tail when it fails or prints none.
 */
export function runPythonScript(script, args, env = {}) {
  const name = path.basename(script);
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
        reject(new Error(`${name} exited with ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`));
        return;
      }
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`${name} printed no JSON result: ${last.slice(0, 200)}`));
      }
    });
  });
}
