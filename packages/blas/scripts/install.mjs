// `npm install` / `npm ci` hook: builds the OpenBLAS GEMM addon with node-gyp (npm puts its bundled
// node-gyp on PATH for install scripts). The addon is optional: when the build fails (no compiler,
// no Debian libopenblas-dev) the install still succeeds, with one line saying why; at run time
// @scaleot/backend then keeps the wasm kernels and logs one line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', env: process.env });
const log = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
mkdirSync(join(root, 'build'), { recursive: true });
writeFileSync(join(root, 'build', 'install.log'), log);
if (result.status === 0) {
  console.log('@scaleot/blas: built the OpenBLAS GEMM addon (build/Release/scaleot_blas.node)');
} else {
  const hint = /cblas\.h|lopenblas/.test(log) ? 'libopenblas-dev is not installed (apt-get install -y libopenblas-dev)' : 'see packages/blas/build/install.log';
  console.log(`@scaleot/blas: native GEMM not built (${hint}); the wasm kernels will be used`);
}
