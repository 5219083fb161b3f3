// Models: the tenant's models and the public ones, push (upload with progress), and a
// model's page: versions, config, this node's sessions (the execution provider actually
// used, batching counters, LLM decode counters) and delete.

import { api, upload, tenantPath, can, isPlatformAdmin, enc, session, headerJson } from '../api.js';
import {
  h, section, pageHead, table, button, busy, toast, confirmAction, field, progress, fmt, badge, errorText,
} from '../dom.js';

const PUBLIC = 'public';

/** The API path of a model namespace (`public` or the shown tenant). */
function nsPath(ns, rest = '') {
  return ns === PUBLIC ? `/api/v1/tenants/${PUBLIC}${rest}` : tenantPath(rest);
}

function modelHref(name, ns) {
  return `#/models/${enc(name)}${ns === PUBLIC ? '?ns=public' : ''}`;
}

/** Who may change models in `ns`: developers and up in their tenant; the platform admin in `public`. */
function canWrite(ns) {
  return ns === PUBLIC ? isPlatformAdmin() : can('deploy');
}

function providersText(cfg) {
  const p = (cfg && cfg.providers) || [];
  return p.length ? p.join(' → ') : 'node default';
}

function batchingText(cfg) {
  if (!cfg || !(cfg.max_batch > 1)) return 'off';
  return `≤${cfg.max_batch} rows, ${fmt.num(cfg.max_delay_us)} µs${cfg.row_independent ? ', row-independent' : ''}`;
}

function serveText(cfg) {
  return cfg && cfg.serve ? `${cfg.serve.kind} → ${cfg.serve.function}` : '';
}

function modelTable(models, ns) {
  return table([
    { label: 'Name', value: (m) => h('a', { href: modelHref(m.name, ns), 'data-model-link': m.name }, m.name) },
    { label: 'Latest', class: 'num', value: (m) => `v${m.latest_version}` },
    { label: 'Providers', value: (m) => providersText(m.config) },
    { label: 'Batching', value: (m) => batchingText(m.config) },
    { label: 'Serves', value: (m) => serveText(m.config) },
    { label: 'Updated', value: (m) => fmt.time(m.updated_at) },
  ], models, {
    rowKey: (m) => m.name,
    empty: ns === PUBLIC ? 'No public models.' : 'No models yet.',
  });
}

/** Parses the optional config JSON of a push; throws with a readable message. */
function parseConfig(text) {
  const t = text.trim();
  if (!t) return null;
  let v;
  try { v = JSON.parse(t); } catch (e) { throw new Error(`The model config is not valid JSON: ${e.message}`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('The model config must be a JSON object.');
  return v;
}

function pushCard(ctx) {
  const name = h('input', { id: 'model-name', name: 'model-name', placeholder: 'minilm', title: 'a-z, 0-9 and -', autocomplete: 'off', spellcheck: 'false' });
  const file = h('input', { id: 'model-file', name: 'model-file', type: 'file', accept: '.onnx' });
  const description = h('input', { id: 'model-description', name: 'model-description', placeholder: 'optional', autocomplete: 'off' });
  const config = h('textarea', {
    id: 'model-config', name: 'model-config', rows: '3', spellcheck: 'false',
    placeholder: '{"providers": ["cuda", "cpu"], "max_batch": 32, "max_delay_us": 2000, "serve": {"kind": "embeddings", "function": "embed"}}',
  });
  // The platform admin pushes into the shown tenant or into `public` (every tenant can load those).
  const nsSelect = isPlatformAdmin()
    ? h('select', { id: 'model-namespace', name: 'model-namespace' },
      h('option', { value: 'tenant' }, `tenant ${session.tenant}`), h('option', { value: PUBLIC }, 'public (every tenant)'))
    : null;
  const bar = progress();
  bar.el.classList.add('hidden');
  const status = h('span', { class: 'muted small', 'data-push-status': '' });
  const push = button('Push model', null, { kind: 'primary', action: 'push-model' });
  file.addEventListener('change', () => {
    const f = file.files[0];
    if (f && !name.value.trim()) name.value = f.name.replace(/\.onnx$/i, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 63);
  });
  push.addEventListener('click', busy(push, async () => {
    const n = name.value.trim();
    const f = file.files[0];
    if (!n) throw new Error('Name the model.');
    if (!f) throw new Error('Choose the .onnx file to push.');
    const cfg = parseConfig(config.value);
    const ns = nsSelect && nsSelect.value === PUBLIC ? PUBLIC : 'tenant';
    bar.set(0);
    bar.el.classList.remove('hidden');
    status.textContent = `Uploading ${fmt.bytes(f.size)}…`;
    try {
      const r = await upload('POST', nsPath(ns, `/models/${enc(n)}/versions`), f, {
        headers: cfg ? { 'x-helixflow-model-config': headerJson(cfg) } : {},
        query: { description: description.value.trim() },
        onProgress: (sent, total) => {
          bar.set(total ? sent / total : 0);
          if (sent < total) status.textContent = `Uploading ${fmt.bytes(sent)} of ${fmt.bytes(total)}…`;
          else status.textContent = 'Validating in ONNX Runtime…';
        },
      });
      const v = r && r.version;
      status.textContent = v ? `Pushed ${n} v${v.version} (${fmt.bytes(v.size)}).` : `Pushed ${n}.`;
      toast(status.textContent, 'ok');
      ctx.navigate(modelHref(n, ns));
    } catch (e) {
      status.textContent = `Push failed: ${errorText(e)}`;
      bar.set(0);
      throw e;
    }
  }));
  return section('Push a model', null,
    h('div', { class: 'row' },
      field('Name', name),
      field('ONNX file', file),
      field('Description', description),
      nsSelect ? field('Namespace', nsSelect) : null),
    field('Config (optional JSON, sent as x-helixflow-model-config)', config,
      'providers (tensorrt, cuda, cpu), fallback (next | refuse), max_batch, max_delay_us, row_independent, trt_fp16, serve {kind: embeddings | chat, function}'),
    h('div', { class: 'row push-row' }, push, h('div', { class: 'push-progress' }, bar.el, status)));
}

async function listPage(ctx) {
  const [mine, pub] = await Promise.all([
    api.get(tenantPath('/models')),
    api.get(nsPath(PUBLIC, '/models')),
  ]);
  return h('div', null,
    pageHead('Models', 'ONNX models of this tenant, loaded by wasi:nn and the OpenAI-compatible API on first use.'),
    can('deploy') ? pushCard(ctx) : null,
    section(`Tenant ${session.tenant}`, null, modelTable(mine.models || [], 'tenant')),
    section('Public models', null,
      h('p', { class: 'muted small' }, 'Every tenant can load these; the platform admin pushes them.'),
      modelTable(pub.models || [], PUBLIC)));
}

// ---- one model ----

/** A signature as text; long ones (an LLM's KV cache inputs) are cut after a few. */
function ioText(list, most = 4) {
  const all = (list || []).map((io) => `${io.name}: ${io.ty} [${(io.shape || []).join(', ')}]`);
  return all.length > most ? `${all.slice(0, most).join('; ')}; … ${all.length - most} more` : all.join('; ');
}

function sessionsCard(sessions) {
  const rows = sessions || [];
  const body = table([
    { label: 'Session', value: (s) => h('code', null, s.model) },
    { label: 'Provider used', value: (s) => badge(s.provider, s.provider === 'cpu' ? '' : 'ok') },
    {
      label: 'Batching',
      value: (s) => (s.batching && s.batching.max_batch > 1
        ? `≤${s.batching.max_batch} rows, ${fmt.num(s.batching.max_delay_us)} µs${s.batching.row_independent ? '' : ' (not row-independent: one request per run)'}`
        : 'off'),
    },
    { label: 'Runs', class: 'num', value: (s) => fmt.num(s.runs) },
    { label: 'Batched requests', class: 'num', value: (s) => fmt.num(s.batched_requests) },
    { label: 'Computes', class: 'num', value: (s) => fmt.num(s.computes) },
    { label: 'Errors', class: 'num', value: (s) => fmt.num(s.errors) },
  ], rows, { rowKey: (s) => s.model, empty: 'Not loaded on this node: a session loads on first use (or Preload).' });
  const lms = rows.filter((s) => s.lm);
  return section('Sessions on this node', null, body,
    rows.length ? h('p', { class: 'muted small' }, rows.map((s) => `${s.model} inputs ${ioText(s.inputs)} → outputs ${ioText(s.outputs)}`).join(' · ')) : null,
    lms.length ? h('h3', null, 'LLM decode scheduler') : null,
    lms.length ? table([
      { label: 'Session', value: (s) => h('code', null, s.model) },
      { label: 'Context', class: 'num', value: (s) => fmt.num(s.lm.context) },
      { label: 'Open sequences', class: 'num', value: (s) => fmt.num(s.lm.open_sequences) },
      { label: 'Decode runs', class: 'num', value: (s) => fmt.num(s.lm.runs) },
      { label: 'Batched runs', class: 'num', value: (s) => fmt.num(s.lm.batched_runs) },
      { label: 'Decode rows', class: 'num', value: (s) => fmt.num(s.lm.decode_rows) },
      { label: 'Max rows', class: 'num', value: (s) => fmt.num(s.lm.max_rows) },
      { label: 'Prefill tokens', class: 'num', value: (s) => fmt.num(s.lm.prefill_tokens) },
      { label: 'Sticky runs', class: 'num', value: (s) => fmt.num(s.lm.sticky_runs) },
    ], lms, { rowKey: (s) => s.model, cls: 'lm-table' }) : null);
}

function versionsCard(versions) {
  const rows = [...(versions || [])].sort((a, b) => b.version - a.version);
  return section('Versions', null, table([
    { label: 'Version', class: 'num', value: (v) => `v${v.version}` },
    { label: 'SHA-256', value: (v) => h('code', { title: v.sha256 }, (v.sha256 || '').slice(0, 12)) },
    { label: 'Size', class: 'num', value: (v) => fmt.bytes(v.size) },
    { label: 'Inputs', value: (v) => ioText(v.signature && v.signature.inputs) },
    { label: 'Outputs', value: (v) => ioText(v.signature && v.signature.outputs) },
    { label: 'Description', value: (v) => v.description || '' },
    { label: 'Pushed', value: (v) => fmt.time(v.created_at) },
  ], rows, { rowKey: (v) => String(v.version) }));
}

function configCard(model, ns, ctx) {
  const cfg = model.config || {};
  const view = h('dl', { class: 'kv' },
    h('dt', null, 'Providers'), h('dd', null, providersText(cfg)),
    h('dt', null, 'Fallback'), h('dd', null, cfg.fallback || 'node default'),
    h('dt', null, 'Batching'), h('dd', null, batchingText(cfg)),
    h('dt', null, 'TensorRT fp16'), h('dd', null, cfg.trt_fp16 ? 'yes' : 'no'),
    h('dt', null, 'Serves'), h('dd', null, serveText(cfg) || 'no OpenAI route'));
  if (!canWrite(ns)) return section('Config', null, view);
  const text = fmt.json(cfg);
  const rows = Math.min(18, Math.max(6, text.split('\n').length + 1));
  const editor = h('textarea', { id: 'model-config-edit', name: 'model-config-edit', rows: String(rows), spellcheck: 'false' }, text);
  const save = button('Save config', null, { kind: 'primary', action: 'save-model-config' });
  save.addEventListener('click', busy(save, async () => {
    const parsed = parseConfig(editor.value) || {};
    await api.put(nsPath(ns, `/models/${enc(model.name)}/config`), parsed);
    toast('Config saved: sessions loaded from now on use it.', 'ok');
    ctx.rerender();
  }));
  return section('Config', null, h('div', { class: ['grid-2', 'model-config'] }, view,
    h('div', null,
      field('Edit (JSON)', editor, 'Applies to sessions loaded after the change.'),
      h('div', { class: 'actions' }, save))));
}

async function modelPage(ctx) {
  const ns = ctx.query.ns === PUBLIC ? PUBLIC : 'tenant';
  const name = ctx.params.name;
  const base = nsPath(ns, `/models/${enc(name)}`);
  const r = await api.get(base);
  const m = r.model;
  const actions = [];
  if (canWrite(ns)) {
    const preload = button('Preload', null, { action: 'preload-model', title: 'Load a session on this node now' });
    preload.addEventListener('click', busy(preload, async () => {
      const s = await api.post(`${base}/preload`, undefined);
      toast(`Loaded ${s.model} on ${s.provider}.`, 'ok');
      ctx.rerender();
    }));
    const del = button('Delete model', null, { kind: 'danger', action: 'delete-model' });
    del.addEventListener('click', busy(del, async () => {
      const ok = await confirmAction(`Delete model ${name}?`,
        `Every version of ${name} is removed; functions that load it fail from now on.`, 'Delete model');
      if (!ok) return;
      await api.del(base);
      toast(`Deleted ${name}.`, 'ok');
      ctx.navigate('#/models');
    }));
    actions.push(preload, del);
  }
  return h('div', { 'data-model': m.name },
    h('p', { class: 'small' }, h('a', { href: '#/models' }, '← Models')),
    pageHead(m.name, `${ns === PUBLIC ? 'public model' : `tenant ${m.tenant}`} · latest v${m.latest_version} · created ${fmt.time(m.created_at)}`, actions),
    sessionsCard(r.sessions),
    versionsCard(r.versions),
    configCard(m, ns, ctx));
}

export const routes = [
  { path: 'models', title: 'Models', needs: 'read', nav: { group: 'Tenant', label: 'Models', order: 2 }, render: listPage },
  { path: 'models/:name', title: 'Model', needs: 'read', render: modelPage },
];
