import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@scaleot/cluster';
import { JobQueue } from '@scaleot/queue';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_ROOT, MODEL_DIR, REDIS_URL, REPO, spawnApp, stopProcess, uniquePrefix, type SpawnedProcess } from '../cluster/helpers.js';

// The dashboard in a real browser (Debian's chromium driven by playwright-core) against a spawned
// coordinator and worker on the local Redis: a data owner signs in, creates a request, watches it
// progress and reads its report; another tenant sees none of it; the operator sees the workers.
// Screenshots land in artifacts/ui/ (git-ignored) for people to look at.
const CHROMIUM = process.env.SCALEOT_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'artifacts', 'ui');
// The server renders reports and charts on 2 loaded cores: waits are generous, never timing assertions.
const POLL = { timeout: 60_000, interval: 200 };
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const prefix = uniquePrefix('ui');
const tokens = { 'tenant-a': 'a'.repeat(40), 'tenant-b': 'b'.repeat(40) };
const operatorToken = 'o'.repeat(40);
let storage: string;
let http: string;
let coordinator: SpawnedProcess;
let worker: SpawnedProcess;
let browser: BrowserContext;
let page: Page;
let requestId = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set SCALEOT_CHROMIUM`);
  await mkdir(ARTIFACTS, { recursive: true });
  storage = await mkdtemp(join(tmpdir(), 'scaleot-ui-'));
  await mkdir(join(storage, 'models'), { recursive: true });
  await symlink(MODEL_DIR, join(storage, 'models', 'sotu-gpt2-tiny'));
  await symlink(DATA_ROOT, join(storage, 'data'));
  await writeFile(join(storage, 'tokens.json'), JSON.stringify(tokens));
  await writeFile(join(storage, 'operators.json'), JSON.stringify({ ops: operatorToken }));
  // The smallest budget that still runs every phase: 2 stage-1 rounds, 2 tuning steps, 1 evaluation block.
  await writeFile(
    join(storage, 'config.json'),
    JSON.stringify({
      stage1: { steps: 2, batchSize: 4, microBatchSize: 2, seqLen: 32, rlBatchSize: 2, rank: 16, candidates: 2, warmupSteps: 1 },
      shards: 1,
      dataRoot: DATA_ROOT,
      maxDocuments: 4,
      tune: { steps: 2, batchSize: 2, microBatchSize: 2, seqLen: 32, warmupSteps: 1 },
      eval: { maxBlocks: 1, evalBatchSize: 1 },
      fullFineTune: false,
    }),
  );
  const [httpPort, paramsPort, resultsPort] = [await freePort(), await freePort(), await freePort()];
  const env = { SCALEOT_REDIS_URL: REDIS_URL, SCALEOT_QUEUE_PREFIX: prefix, SCALEOT_STORAGE_DIR: storage, SCALEOT_ZMQ_PARAMS_PORT: String(paramsPort), SCALEOT_ZMQ_RESULTS_PORT: String(resultsPort), SCALEOT_COORDINATOR_HOST: '127.0.0.1' };
  coordinator = spawnApp('coordinator', {
    ...env,
    SCALEOT_HTTP_PORT: String(httpPort),
    SCALEOT_HTTP_HOST: '127.0.0.1',
    SCALEOT_API_TOKENS_FILE: join(storage, 'tokens.json'),
    SCALEOT_OPERATOR_TOKENS_FILE: join(storage, 'operators.json'),
    SCALEOT_COORDINATOR_CONFIG: join(storage, 'config.json'),
  });
  worker = spawnApp('worker', { ...env, SCALEOT_METRICS_PORT: '0' });
  http = `http://127.0.0.1:${httpPort}`;
  const userDataDir = await mkdtemp(join(tmpdir(), 'scaleot-ui-chromium-'));
  [browser] = await Promise.all([
    chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 900 }, acceptDownloads: true }),
    coordinator.waitForLog('coordinator ready', 90_000),
    worker.waitForLog('worker ready', 90_000),
  ]);
  page = await browser.newPage();
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await Promise.all([coordinator, worker].filter(Boolean).map((p) => stopProcess(p)));
  for (const name of ['scaleot', 'scaleot-control']) {
    const q = new JobQueue({ name, connection: REDIS_URL, prefix });
    await q.obliterate().catch(() => undefined);
    await q.close();
  }
  if (storage) await rm(storage, { recursive: true, force: true });
});

async function signIn(token: string): Promise<void> {
  if (await page.locator('#sign-out').isVisible()) await page.locator('#sign-out').click();
  await page.locator('#token').fill(token);
  // Keyboard: Enter in the field submits the form.
  await page.locator('#token').press('Enter');
}

describe('dashboard (chromium)', () => {
  it('a data owner signs in with a token, creates a request, watches it progress and reads its report', async () => {
    await page.goto(`${http}/ui`);
    await expect.poll(() => page.locator('#sign-in-title').textContent(), POLL).toBe('Sign in');
    await signIn('not-a-known-token-xxxxxxxx');
    await expect.poll(() => page.locator('#sign-in-error').textContent(), POLL).toContain('not known');
    await signIn(tokens['tenant-a']);
    await expect.poll(() => page.locator('#who').textContent(), POLL).toBe('Data owner tenant-a');
    await page.locator('input[name="steps"]').fill('2');
    await page.getByRole('button', { name: 'Create request' }).click();
    await expect.poll(() => page.locator('#new-request-status').textContent(), POLL).toMatch(/^Created request req-/);
    requestId = (await page.locator('#new-request-status').textContent())!.replace(/^Created request (\S+)\.$/, '$1');

    // An operator watches the same run live in a second tab (sessionStorage keeps the tokens apart).
    const operatorPage = await browser.newPage();
    await operatorPage.goto(`${http}/ui`);
    await operatorPage.locator('#token').fill(operatorToken);
    await operatorPage.locator('#token').press('Enter');
    let operatorShot = false;

    // Watch the status cell change as the SSE updates arrive, until done.
    const seen: string[] = [];
    let shot = false;
    const status = page.locator(`#requests tr[data-id="${requestId}"] .status`);
    const deadline = Date.now() + 8 * 60_000;
    for (;;) {
      const s = (await status.textContent()) ?? '';
      if (seen.at(-1) !== s) seen.push(s);
      if (!shot && ['tuning', 'building-emulator', 'stage1', 'evaluating'].includes(s)) {
        await page.screenshot({ path: join(ARTIFACTS, '1-owner-request-in-progress.png'), fullPage: true });
        shot = true;
      }
      // Best effort (rounds and jobs of this budget last about a second): the live view with a busy worker.
      const workersNow = (await operatorPage.locator('#workers tbody').textContent()) ?? '';
      if (!operatorShot && workersNow.includes('connected') && !workersNow.includes('idle')) {
        await operatorPage.screenshot({ path: join(ARTIFACTS, '1b-operator-live.png'), fullPage: true });
        operatorShot = true;
      }
      if (s === 'done' || s === 'failed' || Date.now() > deadline) break;
      await page.waitForTimeout(250);
    }
    expect(seen.at(-1), `statuses seen: ${seen.join(' → ')}`).toBe('done');
    expect(seen.length, `statuses seen: ${seen.join(' → ')}`).toBeGreaterThanOrEqual(3);
    expect(seen).toContain('evaluating');
    await operatorPage.close();

    // The five numbers and the chart, then the report that explains them.
    await expect.poll(() => page.locator('#five tbody tr').count(), POLL).toBe(5);
    expect(await page.locator('#five thead').textContent()).toContain('perplexity (lower is better)');
    await expect.poll(() => page.locator('#five-chart svg').count(), POLL).toBe(1);
    expect(await page.locator('#five-chart svg').textContent()).toContain('perplexity, lower is better');
    await page.getByRole('button', { name: 'Read the report' }).click();
    const report = page.locator('#report');
    await expect.poll(() => report.isVisible(), POLL).toBe(true);
    const text = (await report.textContent()) ?? '';
    for (const part of ['What the five numbers mean', 'Utility.', 'Privacy.', 'Protocol', 'Versions and hyper-parameters']) expect(text).toContain(part);
    expect(text).toMatch(/Evaluated: 1 of \d+ test blocks of \d+ tokens: a subset/);
    expect(await report.locator('table').count()).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: join(ARTIFACTS, '2-owner-report.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download emulator (.tar)' }).click()]);
    expect(download.suggestedFilename()).toBe(`${requestId}-emulator.tar`);

    // Keyboard: the row's Open button takes Enter and moves the focus to the request's details.
    await page.locator(`#requests tr[data-id="${requestId}"] button`).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement?.id'), POLL).toBe('detail');
  });

  it('another tenant\'s token sees none of it', async () => {
    expect(requestId).toMatch(/^req-/);
    await signIn(tokens['tenant-b']);
    await expect.poll(() => page.locator('#who').textContent(), POLL).toBe('Data owner tenant-b');
    await expect.poll(() => page.locator('#no-requests').isVisible(), POLL).toBe(true);
    expect(await page.locator('#requests tbody tr').count()).toBe(0);
    expect(await page.content()).not.toContain(requestId);
    // Asking for tenant-a's request directly with tenant-b's token: 404, as for an id that does not exist.
    const statuses = await page.evaluate(
      async ([id, token]) => Promise.all([`/v1/requests/${id}`, `/ui/api/requests/${id}/report`, `/ui/api/requests/${id}/charts`, '/ui/api/operator/overview'].map(async (p) => (await fetch(p, { headers: { authorization: `Bearer ${token}` } })).status)),
      [requestId, tokens['tenant-b']] as const,
    );
    expect(statuses).toEqual([404, 404, 404, 403]);
    await page.screenshot({ path: join(ARTIFACTS, '3-other-tenant-sees-nothing.png'), fullPage: true });
  });

  it('the operator view shows stage 1, the workers, the queues and every tenant\'s requests', async () => {
    await signIn(operatorToken);
    await expect.poll(() => page.locator('#who').textContent(), POLL).toBe('Operator ops');
    const workers = page.locator('#workers tbody tr');
    await expect.poll(() => workers.first().textContent(), POLL).toContain(`:${worker.pid}`);
    expect(await workers.first().textContent()).toMatch(/connected \d+ s/);
    await expect.poll(() => page.locator('#queues tbody').textContent(), POLL).toContain('scaleot-control');
    await expect.poll(() => page.locator('#all-requests tbody').textContent(), POLL).toContain(requestId);
    expect(await page.locator('#all-requests tbody').textContent()).toContain('tenant-a');
    await expect.poll(() => page.locator('#stage1').textContent(), POLL).toContain('sotu-gpt2-tiny: done, step 2');
    expect(await page.locator('#stage1 figure svg').count()).toBe(2);
    await page.screenshot({ path: join(ARTIFACTS, '4-operator.png'), fullPage: true });
  });
});
