// The playground: chat (streamed), embeddings (similarity heat map), image
// classification and invoking any function, each with the equivalent curl / Python /
// JavaScript. Everything goes through api.js with the signed-in credential; the
// snippets name $HELIXFLOW_API_KEY instead.

import {
  api, request, readSse, errorOf, ApiError, session, can, isPlatformAdmin, tenantPath, enc, origin,
} from '../api.js';
import {
  h, replace, section, pageHead, button, errorBox, errorText, toast, field, fmt, badge,
} from '../dom.js';
import { chatSnippets, embeddingsSnippets, httpSnippets, snippetPanel } from '../snippets.js';

// ---- shared ----

/** The tenant named as the OpenAI organization: only a platform admin key needs one. */
function orgHeaders() {
  return isPlatformAdmin() ? { 'openai-organization': session.tenant } : {};
}

function orgName() {
  return isPlatformAdmin() ? session.tenant : undefined;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/**
 * The models /v1 serves in the tenant, those of `kind` (chat | embeddings) first.
 * /v1/models does not say a model's kind; the registry does (GET .../models, needs
 * read), so without read every served model is offered, likely ones first.
 */
async function servedModels(kind) {
  const [list, reg] = await Promise.all([
    api.get('/v1/models', { headers: orgHeaders() }),
    can('read') ? api.get(tenantPath('/models')) : Promise.resolve(null),
  ]);
  const ids = ((list && list.data) || []).map((m) => m.id).sort();
  if (reg) {
    const kinds = new Map(((reg && reg.models) || []).map((m) => [m.name, m.config && m.config.serve && m.config.serve.kind]));
    return { ids: ids.filter((id) => kinds.get(id) === kind), known: true };
  }
  const looksEmbedding = (id) => /embed|minilm|mpnet|bge|e5|gte/i.test(id);
  const likely = (id) => (kind === 'embeddings') === looksEmbedding(id);
  return { ids: [...ids.filter(likely), ...ids.filter((id) => !likely(id))], known: false };
}

function modelSelect(id, ids, kind) {
  const sel = h('select', { id, name: 'model' }, ids.map((m) => h('option', { value: m }, m)));
  if (!ids.length) sel.appendChild(h('option', { value: '' }, `(no ${kind} model served)`));
  return sel;
}

function noModelHint(ids, kind, fn) {
  if (ids.length) return null;
  return h('p', { class: 'hint' },
    `No ${kind} model is served in ${session.tenant}. Push one with `,
    h('code', null, `helixflow models push -t ${session.tenant} -m NAME model.onnx --serve ${kind}:${fn}`), '.');
}

/** An optional number from an input: undefined when empty; throws when not a number. */
function numberOf(input, label, { integer = false } = {}) {
  const raw = input.value.trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`${label} must be ${integer ? 'an integer' : 'a number'}`);
  }
  return n;
}

/** numberOf, ignoring a bad value (for snippets, refreshed while the user types). */
function lenient(fn) {
  try { return fn(); } catch (_) { return undefined; }
}

function stat(id, label, value = '—', title = undefined) {
  return h('div', { class: 'stat', title }, h('b', { id }, value), h('span', { class: 'muted small' }, label));
}

function page(title, subtitle, request, response, snippets) {
  return h('div', { class: 'playground' },
    pageHead(title, subtitle),
    h('div', { class: 'grid-2' }, request, response),
    section('Code', null,
      h('p', { class: 'muted small' }, 'The same request from a terminal or a program. Set HELIXFLOW_API_KEY to an API key of this tenant.'),
      snippets.el));
}

/** Runs the snippets' `update` on every change of the form. */
function live(form, update) {
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  update();
}

// ---- chat ----

/** "a, b, \n" -> ['a', 'b', '\n'] (\n and \t are escapes); one stop is sent as a string. */
function stopsOf(text) {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean)
    .map((s) => s.replace(/\\n/g, '\n').replace(/\\t/g, '\t'));
  if (!list.length) return undefined;
  return list.length === 1 ? list[0] : list;
}

async function chatView(ctx) {
  const { ids } = await servedModels('chat');
  const model = modelSelect('chat-model', ids, 'chat');
  const system = h('textarea', { id: 'chat-system', name: 'system', rows: '2', placeholder: 'Optional; the model\'s default when empty' });
  const input = h('textarea', { id: 'chat-input', name: 'message', rows: '4' });
  input.value = 'What is the capital of France?';
  const temperature = h('input', { id: 'chat-temperature', name: 'temperature', type: 'number', min: '0', max: '2', step: '0.1', value: '0.7' });
  const topP = h('input', { id: 'chat-top-p', name: 'top_p', type: 'number', min: '0', max: '1', step: '0.05', value: '1' });
  const maxTokens = h('input', { id: 'chat-max-tokens', name: 'max_tokens', type: 'number', min: '1', step: '1', value: '128' });
  const seed = h('input', { id: 'chat-seed', name: 'seed', type: 'number', step: '1', placeholder: 'random' });
  const stop = h('input', { id: 'chat-stop', name: 'stop', type: 'text', placeholder: 'e.g. \\n\\n, END' });

  const output = h('div', { id: 'chat-output', class: 'chat-out', 'data-state': 'idle', 'aria-live': 'polite' });
  const errSlot = h('div', { class: 'chat-error' });
  const stats = {
    ttft: stat('chat-ttft', 'TTFT', '—', 'time to first token'),
    tps: stat('chat-tps', 'tokens/s', '—', 'completion tokens per second after the first'),
    tokens: stat('chat-tokens', 'tokens in + out'),
    elapsed: stat('chat-elapsed', 'elapsed'),
    finish: stat('chat-finish', 'finish'),
  };
  const setStat = (k, v) => { stats[k].querySelector('b').textContent = v; };

  /** The request body; `strict` throws on a bad number (Send), else drops it (snippets). */
  const body = (strict) => {
    const num = (el, label, o) => (strict ? numberOf(el, label, o) : lenient(() => numberOf(el, label, o)));
    const messages = [];
    if (system.value.trim()) messages.push({ role: 'system', content: system.value });
    messages.push({ role: 'user', content: input.value });
    const b = { model: model.value, messages, stream: true, stream_options: { include_usage: true } };
    const params = {
      temperature: num(temperature, 'temperature'),
      top_p: num(topP, 'top_p'),
      max_tokens: num(maxTokens, 'max_tokens', { integer: true }),
      seed: num(seed, 'seed', { integer: true }),
      stop: stopsOf(stop.value),
    };
    for (const [k, v] of Object.entries(params)) if (v !== undefined) b[k] = v;
    return b;
  };

  let controller = null;
  let ticker = null;
  const sendBtn = button('Send', null, { kind: 'primary', action: 'send-chat', disabled: !ids.length });
  const stopBtn = button('Stop', () => { if (controller) controller.abort(); }, { action: 'stop-chat', disabled: true });
  ctx.onLeave(() => { if (controller) controller.abort(); clearInterval(ticker); });

  const send = async () => {
    let b;
    try {
      b = body(true);
      if (!b.model) throw new Error('pick a chat model');
      if (!input.value.trim()) throw new Error('type a message');
    } catch (e) { toast(errorText(e), 'error'); return; }
    controller = new AbortController();
    const mine = controller;
    sendBtn.disabled = true;
    stopBtn.disabled = false;
    const text = document.createTextNode('');
    replace(output, text);
    replace(errSlot);
    output.dataset.state = 'streaming';
    for (const k of Object.keys(stats)) setStat(k, '—');
    const t0 = performance.now();
    let tFirst = null;
    let tLast = null;
    let deltas = 0;
    let usage = null;
    const rate = (n) => (n > 1 && tLast > tFirst ? fmt.num((n - 1) / ((tLast - tFirst) / 1000), 1) : '—');
    ticker = setInterval(() => setStat('elapsed', fmt.ms(performance.now() - t0)), 100);
    try {
      const resp = await request('POST', '/v1/chat/completions', { json: b, raw: true, signal: mine.signal, headers: orgHeaders() });
      if (!resp.ok) throw await errorOf(resp);
      await readSse(resp, (chunk) => {
        if (chunk.error) {
          throw new ApiError(resp.status, chunk.error.code || 'stream_error', chunk.error.message || 'the stream failed',
            resp.headers.get('x-helixflow-request-id'), chunk);
        }
        const choice = chunk.choices && chunk.choices[0];
        const delta = choice && choice.delta && choice.delta.content;
        if (delta) {
          const now = performance.now();
          if (tFirst === null) { tFirst = now; setStat('ttft', fmt.ms(now - t0)); }
          tLast = now;
          deltas += 1;
          text.appendData(delta);
          output.scrollTop = output.scrollHeight;
          setStat('tps', rate(deltas));
          setStat('tokens', `${deltas}`);
        }
        if (choice && choice.finish_reason) setStat('finish', choice.finish_reason);
        if (chunk.usage) usage = chunk.usage;
      });
      if (usage) {
        setStat('tokens', `${usage.prompt_tokens} + ${usage.completion_tokens} = ${usage.total_tokens}`);
        setStat('tps', rate(usage.completion_tokens));
      }
      output.dataset.state = 'done';
    } catch (e) {
      if (e && e.name === 'AbortError') {
        output.dataset.state = 'stopped';
        setStat('finish', 'stopped');
      } else {
        mine.abort();
        output.dataset.state = 'error';
        replace(errSlot, errorBox(e));
      }
    } finally {
      clearInterval(ticker);
      setStat('elapsed', fmt.ms(performance.now() - t0));
      if (controller === mine) controller = null;
      sendBtn.disabled = !ids.length;
      stopBtn.disabled = true;
    }
  };
  sendBtn.addEventListener('click', send);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !sendBtn.disabled) { e.preventDefault(); send(); }
  });

  const form = h('div', { class: 'pg-form', 'data-form': 'chat' },
    field('Model', model), noModelHint(ids, 'chat', 'chat'),
    field('System prompt', system),
    field('Message', input, 'Ctrl+Enter sends.'),
    h('div', { class: 'row' },
      field('temperature', temperature), field('top_p', topP), field('max_tokens', maxTokens)),
    h('div', { class: 'row' },
      field('seed', seed), field('stop', stop, 'Up to 4, comma-separated; \\n is a newline.')),
    h('div', { class: 'actions' }, sendBtn, stopBtn));
  const snippets = snippetPanel('chat');
  live(form, () => snippets.update(chatSnippets({ origin: origin(), body: body(false), org: orgName() })));
  return page('Chat', 'OpenAI-compatible chat completions, streamed token by token.',
    section('Request', null, form),
    section('Response', null, h('div', { class: 'stats', id: 'chat-stats' }, Object.values(stats)), errSlot, output),
    snippets);
}

// ---- embeddings ----

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i += 1) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

/** White at 0, the accent blue at 1, orange towards -1. */
function heat(v) {
  const t = Math.min(1, Math.abs(v));
  const [r, g, b] = v >= 0 ? [30, 111, 217] : [217, 84, 30];
  const mix = (c) => Math.round(255 + (c - 255) * t);
  return `rgb(${mix(r)}, ${mix(g)}, ${mix(b)})`;
}

const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function heatmap(sentences, vectors) {
  const head = h('tr', null, h('th', null, ''), sentences.map((s, j) => h('th', { title: s, scope: 'col' }, String(j + 1))));
  const rows = sentences.map((s, i) => h('tr', { 'data-row': String(i + 1) },
    h('th', { scope: 'row', class: 'hm-label', title: s }, `${i + 1}. ${clip(s, 48)}`),
    sentences.map((_, j) => {
      const v = cosine(vectors[i], vectors[j]);
      const td = h('td', { 'data-i': String(i), 'data-j': String(j), title: `${i + 1} · ${j + 1}: ${v.toFixed(4)}`,
        class: Math.abs(v) > 0.55 ? 'hm-dark' : null }, v.toFixed(2));
      td.style.backgroundColor = heat(v);
      return td;
    })));
  return h('table', { class: 'heatmap', id: 'similarity' }, h('thead', null, head), h('tbody', null, rows));
}

async function embeddingsView() {
  const { ids } = await servedModels('embeddings');
  const model = modelSelect('embed-model', ids, 'embeddings');
  const input = h('textarea', { id: 'embed-input', name: 'input', rows: '6' });
  input.value = [
    'The cat sits on the mat.',
    'A kitten is resting on a rug.',
    'Stock markets fell sharply today.',
    'Investors sold shares as prices dropped.',
  ].join('\n');
  const sentences = () => input.value.split('\n').map((s) => s.trim()).filter(Boolean);
  const result = h('div', { id: 'embed-result', 'data-state': 'idle' },
    h('p', { class: 'muted' }, 'Run to see how similar the sentences are (cosine similarity of their embeddings).'));

  const runBtn = button('Run', null, { kind: 'primary', action: 'run-embeddings', disabled: !ids.length });
  runBtn.addEventListener('click', async () => {
    const list = sentences();
    if (!list.length) { toast('Type at least one sentence (one per line).', 'error'); return; }
    runBtn.disabled = true;
    result.dataset.state = 'running';
    replace(result, h('p', { class: 'muted' }, 'Embedding…'));
    const t0 = performance.now();
    try {
      const r = await api.post('/v1/embeddings', { model: model.value, input: list }, { headers: orgHeaders() });
      const ms = performance.now() - t0;
      const vectors = [...r.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
      const dims = vectors.length ? vectors[0].length : 0;
      replace(result,
        h('div', { class: 'stats' },
          stat('embed-dims', 'dimensions', String(dims)),
          stat('embed-count', 'sentences', String(vectors.length)),
          stat('embed-tokens', 'prompt tokens', r.usage ? String(r.usage.prompt_tokens) : '—'),
          stat('embed-ms', 'round trip', fmt.ms(ms))),
        h('h3', null, 'Cosine similarity'),
        h('div', { class: 'hm-wrap' }, heatmap(list, vectors)));
      result.dataset.state = 'done';
    } catch (e) {
      replace(result, errorBox(e));
      result.dataset.state = 'error';
    } finally {
      runBtn.disabled = !ids.length;
    }
  });

  const form = h('div', { class: 'pg-form', 'data-form': 'embeddings' },
    field('Model', model), noModelHint(ids, 'embeddings', 'embed-minilm'),
    field('Sentences', input, 'One per line.'),
    h('div', { class: 'actions' }, runBtn));
  const snippets = snippetPanel('embeddings');
  live(form, () => snippets.update(embeddingsSnippets({ origin: origin(), model: model.value, input: sentences(), org: orgName() })));
  return page('Embeddings', 'OpenAI-compatible embeddings; the similarity of every pair of sentences.',
    section('Request', null, form), section('Result', null, result), snippets);
}

// ---- functions (classify, invoke) ----

/** The tenant's function names when the role may list them (one request), else null. */
async function functionNames() {
  if (!can('read')) return null;
  const r = await api.get(tenantPath('/functions'));
  return ((r && r.functions) || []).map((f) => f.name).sort();
}

/** A select of the tenant's functions, or a text input when they cannot be listed. */
function functionPicker(id, names, preferred) {
  if (!names) return h('input', { id, name: 'function', type: 'text', value: preferred || '', spellcheck: 'false', autocomplete: 'off' });
  const list = preferred && !names.includes(preferred) ? [preferred, ...names] : names;
  const sel = h('select', { id, name: 'function' }, list.map((n) => h('option', { value: n }, n)));
  if (preferred) sel.value = preferred;
  if (!list.length) sel.appendChild(h('option', { value: '' }, '(no functions)'));
  return sel;
}

/** `/{tenant}/{function}`. */
function functionUrl(fn) {
  return `/${enc(session.tenant)}/${enc(fn)}`;
}

// ---- classify ----

function topTable(top) {
  return h('table', { class: 'grid', id: 'classify-table' },
    h('thead', null, h('tr', null, h('th', { class: 'num' }, '#'), h('th', null, 'label'), h('th', null, 'probability'))),
    h('tbody', null, top.map((t, i) => {
      const fill = h('div', { class: 'pg-bar-fill' });
      fill.style.width = `${Math.max(0, Math.min(1, Number(t.probability) || 0)) * 100}%`;
      return h('tr', { 'data-row': String(t.label) },
        h('td', { class: 'num' }, String(i + 1)),
        h('td', null, String(t.label), h('span', { class: 'muted small' }, ` (${t.index})`)),
        h('td', { class: 'pg-prob' }, h('div', { class: 'pg-bar' }, fill), h('span', { class: 'num' }, `${(Number(t.probability) * 100).toFixed(1)}%`)));
    })));
}

async function classifyView(ctx) {
  const names = await functionNames();
  const fnDefault = names && !names.includes('classify-image') && names.length ? names[0] : 'classify-image';
  const fn = functionPicker('classify-function', names, fnDefault);
  const file = h('input', { id: 'image-file', name: 'image', type: 'file', accept: 'image/png,image/jpeg' });
  const preview = h('img', { id: 'image-preview', class: ['preview-img', 'hidden'], alt: 'the picture to classify' });
  const result = h('div', { id: 'classify-result', 'data-state': 'idle' },
    h('p', { class: 'muted' }, 'Pick a JPEG or PNG picture, then Classify.'));
  let url = null;
  const dropPreview = () => { if (url) URL.revokeObjectURL(url); url = null; };
  ctx.onLeave(dropPreview);
  file.addEventListener('change', () => {
    dropPreview();
    const f = file.files && file.files[0];
    if (!f) { preview.classList.add('hidden'); return; }
    url = URL.createObjectURL(f);
    preview.src = url;
    preview.classList.remove('hidden');
  });

  const go = button('Classify', null, { kind: 'primary', action: 'classify' });
  go.addEventListener('click', async () => {
    const f = file.files && file.files[0];
    const name = fn.value.trim();
    if (!f) { toast('Pick a picture first.', 'error'); return; }
    if (!name) { toast('Name the function.', 'error'); return; }
    go.disabled = true;
    result.dataset.state = 'running';
    replace(result, h('p', { class: 'muted' }, `Classifying ${f.name}…`));
    const t0 = performance.now();
    try {
      const resp = await request('POST', `${functionUrl(name)}/`, { body: f, headers: { 'content-type': f.type || 'application/octet-stream' }, raw: true });
      if (!resp.ok) throw await errorOf(resp);
      const text = await resp.text();
      const ms = performance.now() - t0;
      let r;
      try { r = JSON.parse(text); } catch (_) { throw new Error(`${name} did not answer JSON: ${clip(text, 200)}`); }
      if (!r || !Array.isArray(r.top5)) throw new Error(`${name} answered without a top5 list: ${clip(text, 200)}`);
      replace(result,
        h('div', { class: 'stats' },
          stat('classify-top', 'top label', String(r.top5.length ? r.top5[0].label : '—')),
          stat('classify-model', 'model', String(r.model || '—')),
          stat('classify-ms', 'round trip', fmt.ms(ms))),
        topTable(r.top5.slice(0, 5)));
      result.dataset.state = 'done';
    } catch (e) {
      replace(result, errorBox(e));
      result.dataset.state = 'error';
    } finally {
      go.disabled = false;
    }
  });

  const form = h('div', { class: 'pg-form', 'data-form': 'classify' },
    field('Function', fn, 'POST the image bytes to /{tenant}/{function}/; answers the ImageNet top-5.'),
    field('Picture', file), preview,
    h('div', { class: 'actions' }, go));
  const snippets = snippetPanel('classify');
  live(form, () => {
    const f = file.files && file.files[0];
    snippets.update(httpSnippets({
      origin: origin(), method: 'POST', path: `${functionUrl(fn.value.trim() || 'classify-image')}/`,
      headers: { 'content-type': (f && f.type) || 'image/jpeg' }, file: (f && f.name) || 'photo.jpg',
    }));
  });
  return page('Image classification', 'Upload a picture; the function answers its top-5 ImageNet labels.',
    section('Request', null, form), section('Top 5', null, result), snippets);
}

// ---- invoke ----

/** "Name: value" lines -> {name: value}; throws on a line without a colon. */
function headersOf(text, strict) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const i = line.indexOf(':');
    if (i <= 0) {
      if (strict) throw new Error(`header line "${clip(line, 40)}" is not "Name: value"`);
      continue;
    }
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function prettyBody(text, type) {
  if (/json/i.test(type || '') || /^\s*[[{]/.test(text)) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON after all */ }
  }
  return text;
}

function logView(rec) {
  if (!rec) return [h('span', { class: 'meta' }, 'No log record of this invocation.')];
  const parts = [];
  if (rec.request_id) {
    parts.push(h('span', { class: 'meta' },
      `request ${rec.request_id} · version ${rec.version} · ${rec.trigger} · ${rec.outcome} · ${fmt.ms(rec.duration_us / 1000)}${rec.truncated ? ' · truncated' : ''}\n`));
  }
  if (rec.stdout) parts.push(h('span', { class: 'stdout' }, rec.stdout));
  if (rec.stdout && !rec.stdout.endsWith('\n') && rec.stderr) parts.push('\n');
  if (rec.stderr) parts.push(h('span', { class: 'stderr' }, rec.stderr));
  if (!rec.stdout && !rec.stderr) parts.push(h('span', { class: 'meta' }, '(the invocation printed nothing)'));
  return parts;
}

/** The log record of `requestId` (the node records it as the invocation ends). */
async function logRecord(fn, requestId, isCurrent) {
  for (let i = 0; i < 12 && isCurrent(); i += 1) {
    const r = await api.get(tenantPath(`/functions/${enc(fn)}/logs`), { query: { limit: 50 } });
    const rec = ((r && r.logs) || []).find((l) => l.request_id === requestId);
    if (rec) return rec;
    await sleep(250);
  }
  return null;
}

/** Base64 (X-Amz-Log-Result) -> text. */
/** The header (as typed) that would carry a credential of its own, if any: the console sends the session's. */
function credentialHeader(hdrs) {
  return Object.keys(hdrs).find((k) => ['authorization', 'x-api-key'].includes(k.toLowerCase()));
}

function unbase64(b64) {
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

async function invokeView(ctx) {
  const names = await functionNames();
  const wanted = ctx.query.function || (names && names[0]) || '';
  const fn = functionPicker('invoke-function', names, wanted);
  // An invoker cannot read logs: an Event invocation then goes through the Lambda
  // Invoke API (synchronous too), whose X-Amz-Log-Type: Tail answers the end of the log
  // with the response. The form and the snippets say so.
  const lambdaEvents = !can('read');
  const trigger = h('select', { id: 'invoke-trigger', name: 'trigger' },
    h('option', { value: 'http' }, 'HTTP (/{tenant}/{function}/…)'),
    h('option', { value: 'event' }, lambdaEvents
      ? 'Event (synchronous, through the Lambda Invoke API (X-Amz-Log-Type: Tail))'
      : 'Event (POST /invoke/{tenant}/{function})'));
  if (ctx.query.trigger === 'event') trigger.value = 'event';
  const handlers = h('span', { id: 'invoke-handlers', class: 'hint' });
  const method = h('select', { id: 'invoke-method', name: 'method' }, METHODS.map((m) => h('option', { value: m }, m)));
  method.value = 'POST';
  const path = h('input', { id: 'invoke-path', name: 'path', type: 'text', value: '/', spellcheck: 'false' });
  const headers = h('textarea', { id: 'invoke-headers', name: 'headers', rows: '2', spellcheck: 'false', placeholder: 'Name: value (one per line)' });
  headers.value = 'content-type: application/json';
  const headersError = h('div', { id: 'invoke-headers-error' });
  const payload = h('textarea', { id: 'invoke-payload', name: 'payload', rows: '8', spellcheck: 'false' });
  payload.value = '{\n  "hello": "world"\n}';
  const httpOnly = h('div', { class: 'pg-http' },
    h('div', { class: 'row' }, field('Method', method), field('Path', path, 'Below the function, with an optional ?query.')),
    field('Headers', headers), headersError);
  const eventNote = h('p', { class: 'muted small', id: 'invoke-event-note' }, lambdaEvents
    ? 'Your role cannot read the function\'s logs, so the console sends an Event synchronously through the Lambda Invoke API (POST /2015-03-31/functions/{tenant}:function:{function}/invocations with X-Amz-Log-Type: Tail), which returns the end of the log with the response. The snippets show that request.'
    : 'Sent as POST /invoke/{tenant}/{function}; the logs are then read from the function\'s log.');

  const status = h('b', { id: 'invoke-status' }, '—');
  const duration = h('b', { id: 'invoke-duration' }, '—');
  const requestId = h('code', { id: 'invoke-request-id' }, '—');
  const respHeaders = h('dl', { class: 'kv', id: 'invoke-response-headers' });
  const bodyOut = h('pre', { id: 'invoke-body', class: 'code' });
  const logs = h('pre', { id: 'invoke-logs', class: 'logs' });
  const logsNote = h('p', { class: 'muted small', id: 'invoke-logs-note' });
  const errSlot = h('div');
  const result = h('div', { id: 'invoke-result', 'data-state': 'idle' },
    h('div', { class: 'stats' },
      h('div', { class: 'stat' }, status, h('span', { class: 'muted small' }, 'status')),
      h('div', { class: 'stat' }, duration, h('span', { class: 'muted small' }, 'duration')),
      h('div', { class: 'stat' }, requestId, h('span', { class: 'muted small' }, 'request id'))),
    errSlot,
    h('h3', null, 'Response headers'), respHeaders,
    h('h3', null, 'Body'), bodyOut,
    h('h3', null, 'Logs'), logsNote, logs);

  const isEvent = () => trigger.value === 'event';
  const hasBody = () => isEvent() || !['GET', 'HEAD'].includes(method.value);
  const pathOf = () => {
    const p = path.value.trim() || '/';
    return p.startsWith('/') || p.startsWith('?') ? p : `/${p}`;
  };
  const viaLambda = () => isEvent() && lambdaEvents;
  /** `/2015-03-31/functions/{tenant}:function:{name}/invocations`. */
  const lambdaUrl = (name) => `/2015-03-31/functions/${enc(`${session.tenant}:function:${name}`)}/invocations`;
  const LAMBDA_HEADERS = { 'x-amz-log-type': 'Tail', 'content-type': 'application/json' };
  // A typed Authorization / x-api-key would be merged with the console's own credential.
  const credentialRefusal = () => {
    const bad = !isEvent() && credentialHeader(headersOf(headers.value, false));
    return bad ? `the console sends your credential; remove the ${bad} header` : null;
  };
  const syncForm = () => {
    httpOnly.classList.toggle('hidden', isEvent());
    eventNote.classList.toggle('hidden', !isEvent());
    payload.disabled = !hasBody();
    const refusal = credentialRefusal();
    if (!refusal) replace(headersError);
    else if (headersError.textContent !== `Error: ${refusal}`) replace(headersError, errorBox(new Error(refusal)));
  };

  // Which handlers the function exports (its latest version), to preselect the trigger.
  let probe = 0;
  const probeHandlers = async () => {
    const name = fn.value.trim();
    const mine = ++probe;
    replace(handlers);
    if (!can('read') || !name || (names && !names.includes(name))) return;
    try {
      const r = await api.get(tenantPath(`/functions/${enc(name)}`));
      if (mine !== probe || !ctx.isCurrent()) return;
      const latest = r.function && r.function.latest_version;
      const v = (r.versions || []).find((x) => x.version === latest) || (r.versions || [])[0];
      const ex = (v && v.exports) || {};
      const kinds = [ex.http && 'HTTP', ex.event && 'Event'].filter(Boolean);
      replace(handlers, `Handlers of version ${v ? v.version : '?'}: ${kinds.join(', ') || 'none'}`);
      if (ex.event && !ex.http) trigger.value = 'event';
      if (ex.http && !ex.event) trigger.value = 'http';
      syncForm();
      refresh();
    } catch (e) {
      replace(handlers, errorText(e));
    }
  };

  const go = button('Invoke', null, { kind: 'primary', action: 'invoke' });
  go.addEventListener('click', async () => {
    const name = fn.value.trim();
    let hdrs;
    try {
      if (!name) throw new Error('name the function');
      hdrs = isEvent() ? {} : headersOf(headers.value, true);
      if (!isEvent() && pathOf().split(/[/?]/).some((s) => s === '..' || s === '.')) throw new Error('the path may not contain . or .. segments');
    } catch (e) { toast(errorText(e), 'error'); return; }
    const refusal = credentialRefusal();
    if (refusal) {
      replace(headersError, errorBox(new Error(refusal)));
      headers.focus();
      return;
    }
    const lambda = viaLambda();
    let url;
    let opts;
    if (lambda) {
      url = lambdaUrl(name);
      opts = { body: payload.value, headers: { ...LAMBDA_HEADERS } };
    } else if (isEvent()) {
      url = `/invoke/${enc(session.tenant)}/${enc(name)}`;
      opts = { body: payload.value, headers: { 'content-type': 'application/json' } };
    } else {
      url = `${functionUrl(name)}${pathOf()}`;
      opts = { body: hasBody() ? payload.value : undefined, headers: hdrs };
    }
    go.disabled = true;
    result.dataset.state = 'running';
    replace(errSlot);
    replace(status, '…');
    replace(duration, '…');
    replace(requestId, '—');
    replace(respHeaders);
    replace(bodyOut);
    replace(logs);
    replace(logsNote);
    const t0 = performance.now();
    try {
      const resp = await request(isEvent() ? 'POST' : method.value, url, { ...opts, raw: true });
      const text = await resp.text();
      replace(duration, fmt.ms(performance.now() - t0));
      replace(status, badge(`${resp.status} ${resp.statusText}`.trim(), resp.ok ? 'ok' : 'error'));
      status.dataset.status = String(resp.status);
      const rid = resp.headers.get('x-helixflow-request-id');
      replace(requestId, rid || '—');
      replace(respHeaders, [...resp.headers.entries()].flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
      replace(bodyOut, h('code', null, text ? prettyBody(text, resp.headers.get('content-type')) : '(empty body)'));
      const ran = resp.headers.has('x-helixflow-version') || resp.headers.has('x-amz-executed-version');
      if (lambda) {
        const tail = resp.headers.get('x-amz-log-result');
        replace(logsNote, 'The end of the log (X-Amz-Log-Result of the Lambda Invoke API; your role cannot read the function\'s logs).');
        replace(logs, tail ? logView({ stdout: unbase64(tail) }) : logView(null));
      } else if (!ran) {
        replace(logs, h('span', { class: 'meta' }, 'The function did not run (the node refused the request), so there are no logs.'));
      } else if (!can('read')) {
        replace(logs, h('span', { class: 'meta' }, 'Reading logs needs the read permission (viewer, developer or admin).'));
      } else if (!rid) {
        replace(logs, logView(null));
      } else {
        replace(logs, h('span', { class: 'meta' }, 'Fetching the logs…'));
        const rec = await logRecord(name, rid, ctx.isCurrent);
        replace(logs, logView(rec));
      }
      result.dataset.state = 'done';
    } catch (e) {
      replace(status, badge('failed', 'error'));
      replace(duration, fmt.ms(performance.now() - t0));
      replace(errSlot, errorBox(e));
      result.dataset.state = 'error';
    } finally {
      go.disabled = false;
    }
  });

  const form = h('div', { class: 'pg-form', 'data-form': 'invoke' },
    field('Function', fn), field('Trigger', trigger, handlers),
    eventNote,
    httpOnly,
    field('Payload', payload, 'The request body (the event, for an Event invocation).'),
    h('div', { class: 'actions' }, go));
  const snippets = snippetPanel('invoke');
  // The snippets show the request the Invoke button sends (less the credential).
  const refresh = () => {
    const typed = fn.value.trim();
    const name = typed && typed !== '.' && typed !== '..' ? typed : 'FUNCTION';
    const typedHeaders = headersOf(headers.value, false);
    const bad = credentialHeader(typedHeaders);
    if (bad) delete typedHeaders[bad];
    let req;
    if (viaLambda()) req = { method: 'POST', path: lambdaUrl(name), headers: LAMBDA_HEADERS, body: payload.value };
    else if (isEvent()) req = { method: 'POST', path: `/invoke/${enc(session.tenant)}/${enc(name)}`, headers: { 'content-type': 'application/json' }, body: payload.value };
    else req = { method: method.value, path: `${functionUrl(name)}${pathOf()}`, headers: typedHeaders, body: hasBody() ? payload.value : undefined };
    snippets.update(httpSnippets({ origin: origin(), ...req }));
  };
  form.addEventListener('change', (e) => { if (e.target === fn) probeHandlers(); });
  form.addEventListener('input', syncForm);
  form.addEventListener('change', syncForm);
  live(form, refresh);
  syncForm();
  await probeHandlers();
  return page('Invoke', 'Call any function over HTTP or as an Event; see its response and what it logged.',
    section('Request', null, form), section('Response', null, result), snippets);
}

export const routes = [
  { path: 'playground/chat', title: 'Chat', needs: 'invoke', nav: { group: 'Playground', label: 'Chat', order: 1 }, render: chatView },
  { path: 'playground/embeddings', title: 'Embeddings', needs: 'invoke', nav: { group: 'Playground', label: 'Embeddings', order: 2 }, render: embeddingsView },
  { path: 'playground/classify', title: 'Image classification', needs: 'invoke', nav: { group: 'Playground', label: 'Classify image', order: 3 }, render: classifyView },
  { path: 'playground/invoke', title: 'Invoke', needs: 'invoke', nav: { group: 'Playground', label: 'Invoke', order: 4 }, render: invokeView },
];
