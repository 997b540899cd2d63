// Runs the built CLI as a user would (a child process of this Node), for the CLI's end-to-end tests.
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const cli = join(repo, 'apps/cli/dist/main.js');
const env = { ...process.env, SCALEOT_LOG_LEVEL: 'warn', SCALEOT_BACKEND: 'wasm' };

/** `scaleot ...args` from the repo root: its exit code and output (a failing command resolves too). */
export async function scaleot(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env: { ...env, ...extraEnv }, cwd: repo, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The object a `--json` command prints as its last stdout line. */
export const lastJson = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1)!);
