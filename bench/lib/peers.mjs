// The PyTorch peers of the shipped-loop benches (tools/pytorch/peers.py), run at PyTorch's best thread
// setting: each candidate setting is run and the fastest median kept; the output names it.
import path from 'node:path';
import { log, repoRoot } from './common.mjs';
import { ensurePyTorch } from './pytorch.mjs';
import { runPythonScript } from './python.mjs';

/** torch intra-op threads × OpenBLAS threads tried (both ways of using the cores; see backend-notes.md). */
export const THREAD_SETTINGS = [
  { torchThreads: 1, blasThreads: 2 },
  { torchThreads: 2, blasThreads: 1 },
];

/** Runs `peers.py <job> ...args` at every setting; resolves { best, runs, status } (best null when unavailable). */
export async function bestPyTorch(job, args, { install = true, settings = THREAD_SETTINGS } = {}) {
  const status = await ensurePyTorch({ install });
  if (!status.available) return { best: null, runs: [], status, error: `PyTorch unavailable: ${status.reason}` };
  const script = path.join(repoRoot, 'tools', 'pytorch', 'peers.py');
  const runs = [];
  for (const s of settings) {
    log(`PyTorch ${job}: torch threads ${s.torchThreads}, OPENBLAS_NUM_THREADS=${s.blasThreads}`);
    const r = await runPythonScript(script, [job, ...args, '--threads', String(s.torchThreads)], { OPENBLAS_NUM_THREADS: String(s.blasThreads), OMP_NUM_THREADS: String(s.torchThreads) });
    runs.push({ ...s, ...r });
  }
  const best = runs.reduce((a, b) => (b.median_step_s < a.median_step_s ? b : a));
  return { best, runs, status };
}

export function settingName(run) {
  return `torch ${run.torch_version}, ${run.torchThreads} intra-op thread${run.torchThreads > 1 ? 's' : ''}, OpenBLAS ${run.blasThreads}`;
}

/** Peak resident memory of a running process so far (VmHWM), bytes; null once it is gone. */
export async function vmHwm(pid) {
  try {
    const { readFile } = await import('node:fs/promises');
    const m = (await readFile(`/proc/${pid}/status`, 'utf8')).match(/^VmHWM:\s+(\d+) kB/m);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
