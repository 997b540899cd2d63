#!/usr/bin/env node
// The `scaleot` command. npm links this file when it installs (before anything is built), so the command
// exists after `npm ci`; it runs the compiled dist/main.js once `npm run build` made it.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('scaleot is not built yet: run `npm run build` at the repository root first\n');
  process.exit(1);
}
const entry = await import(main.href);
if (typeof entry.runFromCommandLine === 'function') await entry.runFromCommandLine();
