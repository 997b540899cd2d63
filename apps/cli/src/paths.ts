import { fileURLToPath } from 'node:url';

/** The repository root as seen from the built CLI (apps/cli/dist/paths.js). */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The data the product ships (moby, spam, sotu); built-in task names resolve against it. */
export const SHIPPED_DATA_DIR = `${repoRoot}data`;
/** The bundled demo model. */
export const SHIPPED_MODEL_DIR = `${repoRoot}models/sotu-gpt2-tiny`;
