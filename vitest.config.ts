import { defineConfig } from 'vitest/config';

// One vitest run over every workspace. Packages resolve through node_modules to their built
// dist/ (what ships is what is tested), so `npm test` builds first.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Fails fast, with one clear line, when the Redis the integration tests use is not there.
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process; numeric suites must not share it across files.
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
});
