// One data owner's request through the coordinator's API, as a client outside the cluster sees it:
// create a managed tuning request, follow it to `done`, fetch the five-number report.
// Usage: node infra/e2e/client.mjs http://127.0.0.1:PORT TOKEN
const [base, token] = process.argv.slice(2);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const started = Date.now();
const log = (msg, extra = {}) => process.stdout.write(`${JSON.stringify({ t: ((Date.now() - started) / 1000).toFixed(1), msg, ...extra })}\n`);

if ((await fetch(`${base}/v1/requests`)).status !== 401) throw new Error('the API answered without a token');
const created = await fetch(`${base}/v1/requests`, {
  method: 'POST',
  headers,
  body: JSON.stringify({ baseModel: 'sotu-gpt2-tiny', preset: { nAdapter: 4, alpha: 0.5, beta: 0.25 }, task: 'moby', managedTuning: true }),
});
if (created.status !== 201) throw new Error(`POST /v1/requests: HTTP ${created.status} ${await created.text()}`);
const { id } = await created.json();
log('request created', { id });
let last = '';
for (;;) {
  const r = await (await fetch(`${base}/v1/requests/${id}`, { headers })).json();
  if (r.status !== last) log('status', { status: r.status, progress: r.progress });
  last = r.status;
  if (r.status === 'done') break;
  if (r.status === 'failed') throw new Error(`request failed: ${r.error}`);
  if (Date.now() - started > 20 * 60_000) throw new Error(`request still ${r.status} after 20 minutes`);
  await new Promise((res) => setTimeout(res, 2000));
}
const response = await fetch(`${base}/v1/requests/${id}/report`, { headers });
if (!response.ok) throw new Error(`GET report: HTTP ${response.status}`);
const report = await response.json();
log('report', { report });
const numbers = ['full_zero_shot', 'emulator_zero_shot', 'emulator_fine_tuned', 'plug_in'].map((k) => report[k] ?? report.report?.[k]);
if (!numbers.every((v) => Number.isFinite(v))) throw new Error(`report lacks the offsite-tuning numbers: ${JSON.stringify(report)}`);
log('ok', { seconds: (Date.now() - started) / 1000 });
