// Build step of the dashboard: the static files beside the compiled app.js in dist/ui.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const here = import.meta.dirname;
const out = join(here, '..', 'dist', 'ui');
mkdirSync(out, { recursive: true });
for (const file of ['index.html', 'style.css']) copyFileSync(join(here, file), join(out, file));
