// The dashboard's browser side: no framework, no build-time dependency beyond tsc. Every call carries
// the bearer token; server-sent events are read through fetch (EventSource cannot send a header).

interface RequestView {
  id: string;
  tenant: string;
  baseModel: string;
  preset: { nAdapter: number; alpha: number; beta: number };
  task: string;
  managedTuning: boolean;
  status: string;
  progress: { phase: string; step?: number; totalSteps?: number; loss?: number; detail?: string };
  error?: string;
  updatedAt: string;
  artifacts: Record<string, boolean>;
  report?: Record<string, number | string | boolean | null>;
}

interface Overview {
  at: string;
  workers: { name: string; queue: string; idleSeconds: number; connectedSeconds: number; currentJob: { id: string; kind: string; tenant?: string; progress?: unknown; runningSeconds: number } | null; completed: number; jobsPerMinute: number }[];
  queues: { queue: string; waiting: number; prioritized: number; delayed: number; active: number; waitingChildren: number; completed: number; failed: number }[];
  stage1: { model: string; state: string; step: number; totalSteps: number | null; lastLoss: number | null; charts: { curves: string; trajectories: string } }[];
  requests: RequestView[];
}

const TOKEN_KEY = 'scaleot.token';
const TERMINAL = new Set(['done', 'failed']);
const $ = <T extends HTMLElement = HTMLElement>(sel: string) => document.querySelector(sel) as T;

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
const streams = new Map<string, AbortController>();
const requests = new Map<string, RequestView>();
let selected: string | null = null;
let operatorStream: AbortController | null = null;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  if (typeof init.body === 'string') headers.set('content-type', 'application/json');
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { message?: string };
      if (body.message) message = body.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new HttpError(res.status, message);
  }
  return res;
}

/** Reads a server-sent event stream with the token in the header, calling `onEvent` per event. */
async function stream(path: string, signal: AbortSignal, onEvent: (event: string, data: unknown) => void): Promise<void> {
  const res = await api(path, { signal, headers: { accept: 'text/event-stream' } });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

const presetText = (p: RequestView['preset']) => `N_a=${p.nAdapter} α=${p.alpha} β=${p.beta}`;
const timeText = (iso: string) => new Date(iso).toLocaleTimeString();

function progressCell(r: RequestView): HTMLElement {
  const cell = el('td');
  const p = r.progress ?? { phase: r.status };
  if (p.step !== undefined && p.totalSteps) {
    cell.append(el('progress', { max: String(p.totalSteps), value: String(p.step), 'aria-label': `${p.phase} step ${p.step} of ${p.totalSteps}` }), ` ${p.step}/${p.totalSteps}`);
    if (p.loss !== undefined) cell.append(` loss ${p.loss.toFixed(3)}`);
  } else cell.append(r.error ?? p.detail ?? '');
  return cell;
}

function statusCell(r: RequestView): HTMLElement {
  return el('td', {}, el('span', { class: `status ${r.status}` }, r.status));
}

// ---- sign in -------------------------------------------------------------------------------------

async function signIn(candidate: string): Promise<void> {
  token = candidate;
  const res = await api('/ui/api/session');
  const session = (await res.json()) as { role: 'data-owner' | 'operator'; name: string };
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#sign-in').hidden = true;
  $('#sign-out').hidden = false;
  $('#who').textContent = session.role === 'operator' ? `Operator ${session.name}` : `Data owner ${session.name}`;
  if (session.role === 'operator') startOperator();
  else await startOwner();
}

function signOut(): void {
  // A fresh page: nothing of the previous session (requests, reports, charts, messages) stays on screen.
  sessionStorage.removeItem(TOKEN_KEY);
  token = '';
  for (const c of streams.values()) c.abort();
  operatorStream?.abort();
  location.replace('/ui');
}

// ---- data owner ----------------------------------------------------------------------------------

async function startOwner(): Promise<void> {
  $('#owner').hidden = false;
  const list = (await (await api('/v1/requests')).json()) as RequestView[];
  for (const r of list) requests.set(r.id, r);
  renderRequests();
  for (const r of list) if (!TERMINAL.has(r.status)) follow(r.id);
}

function renderRequests(): void {
  const body = $('#requests tbody');
  // Rows are rebuilt on every update: keep the keyboard focus on the same row's button.
  const focusedRow = (document.activeElement as HTMLElement | null)?.closest('tr')?.getAttribute('data-id');
  const rows = [...requests.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  $('#no-requests').hidden = rows.length > 0;
  body.replaceChildren(
    ...rows.map((r) => {
      const open = el('button', { type: 'button', class: 'secondary', 'aria-label': `Open request ${r.id}` }, 'Open');
      open.addEventListener('click', () => void select(r.id, true));
      const tr = el('tr', { 'data-id': r.id, ...(r.id === selected ? { class: 'selected' } : {}) }, el('td', {}, el('code', {}, r.id)), el('td', {}, presetText(r.preset)), el('td', {}, r.task), statusCell(r), progressCell(r), el('td', {}, timeText(r.updatedAt)), el('td', {}, open));
      return tr;
    }),
  );
  if (focusedRow) body.querySelector<HTMLButtonElement>(`tr[data-id="${CSS.escape(focusedRow)}"] button`)?.focus();
}

/** Streams one request's updates (the API's SSE) until it is done or failed. */
function follow(id: string): void {
  if (streams.has(id)) return;
  const controller = new AbortController();
  streams.set(id, controller);
  stream(`/v1/requests/${encodeURIComponent(id)}/events`, controller.signal, (_event, data) => {
    const r = data as RequestView;
    requests.set(r.id, r);
    renderRequests();
    if (r.id === selected) void renderDetail(r);
  })
    .catch(() => undefined)
    .finally(() => streams.delete(id));
}

async function select(id: string, focus = false): Promise<void> {
  selected = id;
  renderRequests();
  const r = requests.get(id)!;
  $('#detail').hidden = false;
  $('#report').hidden = true;
  $('#report').replaceChildren();
  await renderDetail(r);
  if (focus) $('#detail').focus();
}

let renderedResultsFor: string | null = null;

async function renderDetail(r: RequestView): Promise<void> {
  $('#detail-title').textContent = `Request ${r.id}: ${r.task} on ${r.baseModel}, ${presetText(r.preset)}`;
  const p = r.progress ?? {};
  const stepText = p.step !== undefined && p.totalSteps ? `, step ${p.step} of ${p.totalSteps}` : '';
  $('#detail-status').textContent = `Status: ${r.status}${stepText}${r.error ? `: ${r.error}` : ''}`;
  $<HTMLButtonElement>('#download-emulator').disabled = !r.artifacts?.emulator;
  $<HTMLButtonElement>('#upload-adapter').disabled = !r.artifacts?.emulator || !['emulator-ready', 'adapter-ready', 'done', 'failed'].includes(r.status);
  $<HTMLButtonElement>('#plug-in').disabled = !['adapter-ready', 'done', 'failed'].includes(r.status) || !r.artifacts?.adapter;
  const done = r.status === 'done' && !!r.report;
  $('#results').hidden = !done;
  if (done && renderedResultsFor !== `${r.id}@${r.updatedAt}`) {
    renderedResultsFor = `${r.id}@${r.updatedAt}`;
    const rep = r.report!;
    const digits = rep.metric === 'accuracy' ? 4 : 2;
    const fmt = (v: unknown) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a');
    const names: [string, string][] = [['full_zero_shot', 'full zero-shot'], ['emulator_zero_shot', 'emulator zero-shot'], ['emulator_fine_tuned', 'emulator fine-tuned'], ['plug_in', 'plug-in'], ['full_fine_tuned', 'full fine-tuning']];
    $('#five thead tr').replaceChildren(el('th', { scope: 'col' }, 'number'), el('th', { scope: 'col' }, `${rep.metric} (${rep.higherIsBetter ? 'higher' : 'lower'} is better)`));
    $('#five tbody').replaceChildren(...names.map(([key, name]) => el('tr', {}, el('th', { scope: 'row' }, name), el('td', { class: 'num' }, fmt(rep[key])))));
    const charts = (await (await api(`/ui/api/requests/${encodeURIComponent(r.id)}/charts`)).json()) as { fiveNumbers: string };
    $('#five-chart').innerHTML = charts.fiveNumbers;
  }
}

async function openReport(): Promise<void> {
  if (!selected) return;
  const html = await (await api(`/ui/api/requests/${encodeURIComponent(selected)}/report`)).text();
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const target = $('#report');
  target.replaceChildren(...[...doc.body.children].map((n) => document.importNode(n, true)));
  target.hidden = false;
  target.setAttribute('tabindex', '-1');
  target.focus();
}

async function download(): Promise<void> {
  if (!selected) return;
  const blob = await (await api(`/v1/requests/${encodeURIComponent(selected)}/emulator.tar`)).blob();
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: `${selected}-emulator.tar` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  $('#detail-message').textContent = `Emulator downloaded (${(blob.size / 1024 / 1024).toFixed(1)} MiB).`;
}

async function upload(): Promise<void> {
  const file = $<HTMLInputElement>('#adapter-file').files?.[0];
  if (!selected) return;
  if (!file) {
    $('#detail-message').textContent = 'Choose the adapter .tar first.';
    return;
  }
  const r = (await (await api(`/v1/requests/${encodeURIComponent(selected)}/adapter`, { method: 'PUT', body: file, headers: { 'content-type': 'application/x-tar' } })).json()) as RequestView;
  requests.set(r.id, r);
  renderRequests();
  await renderDetail(r);
  $('#detail-message').textContent = 'Adapter uploaded.';
}

async function plugIn(): Promise<void> {
  if (!selected) return;
  const r = (await (await api(`/v1/requests/${encodeURIComponent(selected)}/plugin`, { method: 'POST' })).json()) as RequestView;
  requests.set(r.id, r);
  renderRequests();
  follow(r.id);
  $('#detail-message').textContent = 'Plug-in and evaluation started.';
}

async function createRequest(form: HTMLFormElement): Promise<void> {
  const f = new FormData(form);
  const steps = String(f.get('steps') ?? '').trim();
  const body = {
    baseModel: String(f.get('baseModel')),
    task: String(f.get('task')),
    preset: { nAdapter: Number(f.get('nAdapter')), alpha: Number(f.get('alpha')), beta: Number(f.get('beta')) },
    managedTuning: f.get('managedTuning') === 'on',
    ...(steps ? { tuneHyper: { steps: Number(steps) } } : {}),
  };
  const r = (await (await api('/v1/requests', { method: 'POST', body: JSON.stringify(body) })).json()) as RequestView;
  requests.set(r.id, r);
  renderRequests();
  follow(r.id);
  $('#new-request-status').textContent = `Created request ${r.id}.`;
  await select(r.id);
}

// ---- operator ------------------------------------------------------------------------------------

function startOperator(): void {
  $('#operator').hidden = false;
  operatorStream = new AbortController();
  const run = () =>
    stream('/ui/api/operator/events', operatorStream!.signal, (event, data) => {
      if (event === 'overview') renderOverview(data as Overview);
    }).catch(() => {
      if (!operatorStream?.signal.aborted) setTimeout(run, 3000);
    });
  void run();
}

function renderOverview(o: Overview): void {
  $('#operator-updated').textContent = `Updated ${timeText(o.at)} (live).`;
  const stage1 = $('#stage1');
  if (o.stage1.length === 0) stage1.replaceChildren(el('p', {}, 'No stage-1 run yet: the first request for a base model starts one.'));
  else
    stage1.replaceChildren(
      ...o.stage1.map((s) => {
        const box = el('div', { class: 'stage1' });
        const total = s.totalSteps ? ` of ${s.totalSteps}` : '';
        box.append(el('p', {}, el('strong', {}, s.model), `: ${s.state}, step ${s.step}${total}${s.lastLoss !== null ? `, loss ${s.lastLoss.toFixed(4)}` : ''}`));
        if (s.totalSteps) box.append(el('progress', { max: String(s.totalSteps), value: String(s.step), 'aria-label': `stage 1 of ${s.model}: step ${s.step}${total}` }));
        const charts = el('div', { class: 'charts' });
        for (const svg of [s.charts.curves, s.charts.trajectories]) {
          if (!svg) continue;
          const fig = el('figure');
          fig.innerHTML = svg;
          charts.append(fig);
        }
        box.append(charts);
        return box;
      }),
    );
  $('#workers tbody').replaceChildren(
    ...(o.workers.length
      ? o.workers.map((w) => {
          const job = w.currentJob ? `${w.currentJob.kind} ${w.currentJob.id}${w.currentJob.tenant ? ` (${w.currentJob.tenant})` : ''}, ${w.currentJob.runningSeconds.toFixed(0)} s` : 'idle';
          const health = `connected ${Math.round(w.connectedSeconds)} s, last seen ${Math.round(w.idleSeconds)} s ago`;
          return el('tr', {}, el('td', {}, el('code', {}, w.name)), el('td', {}, w.queue), el('td', {}, health), el('td', {}, job), el('td', { class: 'num' }, `${w.completed} jobs in 5 min (${w.jobsPerMinute.toFixed(1)}/min)`));
        })
      : [el('tr', {}, el('td', { colspan: '5' }, 'No worker connected.'))]),
  );
  $('#queues tbody').replaceChildren(
    ...o.queues.map((q) =>
      el('tr', {}, el('th', { scope: 'row' }, q.queue), ...[q.waiting, q.prioritized, q.delayed, q.active, q.waitingChildren, q.completed, q.failed].map((n) => el('td', { class: 'num' }, String(n)))),
    ),
  );
  $('#all-requests tbody').replaceChildren(
    ...(o.requests.length
      ? o.requests.map((r) => el('tr', {}, el('td', {}, r.tenant), el('td', {}, el('code', {}, r.id)), el('td', {}, presetText(r.preset)), el('td', {}, r.task), statusCell(r), progressCell(r), el('td', {}, timeText(r.updatedAt))))
      : [el('tr', {}, el('td', { colspan: '7' }, 'No requests yet.'))]),
  );
}

// ---- wiring --------------------------------------------------------------------------------------

function guarded(target: string, fn: () => Promise<void>): () => void {
  return () => {
    fn().catch((error: unknown) => {
      $(target).textContent = error instanceof Error ? error.message : String(error);
    });
  };
}

$('#sign-in-form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('#sign-in-error').textContent = '';
  signIn($<HTMLInputElement>('#token').value.trim()).catch((error: unknown) => {
    token = '';
    $('#sign-in-error').textContent = error instanceof HttpError && error.status === 401 ? 'That token is not known here.' : String(error instanceof Error ? error.message : error);
  });
});
$('#sign-out').addEventListener('click', signOut);
$('#new-request').addEventListener('submit', (e) => {
  e.preventDefault();
  guarded('#new-request-status', () => createRequest(e.target as HTMLFormElement))();
});
$('#download-emulator').addEventListener('click', guarded('#detail-message', download));
$('#upload-adapter').addEventListener('click', guarded('#detail-message', upload));
$('#plug-in').addEventListener('click', guarded('#detail-message', plugIn));
$('#open-report').addEventListener('click', guarded('#detail-message', openReport));

if (token) signIn(token).catch(() => signOut());
