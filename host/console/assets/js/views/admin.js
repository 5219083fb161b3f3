// Platform admin views: tenants and their limits, the fleet's nodes by location (with
// this node's inference summary), and the node's Prometheus metrics.

import { api, session, origin } from '../api.js';
import {
  h, replace, section, pageHead, table, button, busy, toast, field, fmt, badge, codeBlock, progress,
} from '../dom.js';

// ---- tenants ----

function limitCols() {
  return [
    { label: 'Max memory', class: 'num', value: (t) => `${fmt.num(t.limits && t.limits.max_memory_mb)} MB` },
    { label: 'Max timeout', class: 'num', value: (t) => `${fmt.num(t.limits && t.limits.max_timeout_ms)} ms` },
    { label: 'Max RPS', class: 'num', value: (t) => (t.limits && t.limits.max_rps != null ? fmt.num(t.limits.max_rps) : 'no limit') },
    { label: 'Max concurrency', class: 'num', value: (t) => (t.limits && t.limits.max_concurrency != null ? fmt.num(t.limits.max_concurrency) : 'no limit') },
  ];
}

function numberInput(id, value, placeholder) {
  return h('input', { id, name: id, type: 'number', min: '1', step: '1', value, placeholder });
}

function createTenantCard(ctx) {
  const name = h('input', { id: 'tenant-name', name: 'tenant-name', placeholder: 'acme', title: 'a lowercase letter, then a-z, 0-9 and -', autocomplete: 'off', spellcheck: 'false', maxlength: '63' });
  const mem = numberInput('tenant-max-memory-mb', '256');
  const timeout = numberInput('tenant-max-timeout-ms', '30000');
  const rps = numberInput('tenant-max-rps', '', 'no limit');
  const conc = numberInput('tenant-max-concurrency', '', 'no limit');
  const create = button('Create tenant', null, { kind: 'primary', action: 'create-tenant' });
  const int = (input, label, optional) => {
    const v = input.value.trim();
    if (!v) {
      if (optional) return undefined;
      throw new Error(`${label} is required.`);
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${label} must be a whole number of at least 1.`);
    return n;
  };
  create.addEventListener('click', busy(create, async () => {
    const n = name.value.trim();
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(n)) throw new Error('A tenant name is a lowercase letter then up to 62 of a-z, 0-9 and -.');
    const limits = {
      max_memory_mb: int(mem, 'Max memory', false),
      max_timeout_ms: int(timeout, 'Max timeout', false),
      max_rps: int(rps, 'Max RPS', true),
      max_concurrency: int(conc, 'Max concurrency', true),
    };
    for (const k of Object.keys(limits)) if (limits[k] === undefined) delete limits[k];
    const t = await api.post('/api/v1/tenants', { name: n, limits });
    session.tenantsCache = null; // the tenant picker lists the new one
    toast(`Created tenant ${t.name}.`, 'ok');
    ctx.rerender();
  }));
  return section('Create a tenant', null,
    h('div', { class: 'row' },
      field('Name', name),
      field('Max memory (MB)', mem),
      field('Max timeout (ms)', timeout),
      field('Max RPS (optional)', rps),
      field('Max concurrency (optional)', conc),
      h('div', { class: 'field' }, create)));
}

async function tenantsPage(ctx) {
  const r = await api.get('/api/v1/tenants');
  const list = [...(Array.isArray(r) ? r : r.tenants || [])].sort((a, b) => a.name.localeCompare(b.name));
  const open = (t) => {
    const b = button(t.name === session.tenant ? 'Shown' : 'Show', () => {
      session.tenant = t.name;
      ctx.navigate('#/functions');
    }, { kind: 'small', action: 'open-tenant', disabled: t.name === session.tenant });
    return b;
  };
  return h('div', null,
    pageHead('Tenants', `${list.length} tenant${list.length === 1 ? '' : 's'}. Limits cap every function of a tenant.`),
    createTenantCard(ctx),
    section('Tenants', null, table([
      { label: 'Name', value: (t) => h('strong', null, t.name) },
      ...limitCols(),
      { label: 'Created', value: (t) => fmt.time(t.created_at) },
      { label: '', class: 'num', value: open },
    ], list, { rowKey: (t) => t.name, empty: 'No tenants yet.' })));
}

// ---- fleet ----

function nodeTable(nodes) {
  return table([
    {
      label: 'Instance',
      value: (n) => h('span', null, h('code', null, n.instance), n.this_node ? [' ', badge('this node', 'ok')] : null),
    },
    { label: 'Version', value: (n) => n.version },
    { label: 'Started', value: (n) => h('span', { title: fmt.time(n.started_at) }, fmt.ago(n.started_at)) },
    {
      label: 'Last seen',
      value: (n) => h('span', { title: fmt.time(n.seen_at) }, `${fmt.num(n.age_secs)} s ago`, n.stale ? [' ', badge('stale', 'warn')] : null),
    },
    { label: 'Sessions', class: 'num', value: (n) => (n.inference ? fmt.num(n.sessions) : h('span', { class: 'muted' }, 'no inference')) },
    { label: 'Providers', value: (n) => ((n.providers || []).length ? n.providers.map((p) => [badge(p), ' ']) : h('span', { class: 'muted' }, 'none loaded')) },
    {
      label: 'Models',
      value: (n) => ((n.models || []).length
        ? h('ul', { class: 'plain-list' }, n.models.map((m) => h('li', null, h('code', null, m.model), ` on ${m.provider}`)))
        : h('span', { class: 'muted' }, 'none')),
    },
  ], nodes, { rowKey: (n) => n.instance });
}

function inferenceCard(inf) {
  const kvBar = progress();
  if (inf.kv_cache_limit_bytes) kvBar.set(inf.kv_cache_bytes / inf.kv_cache_limit_bytes);
  kvBar.el.setAttribute('aria-label', 'KV cache in use');
  return section('This node: inference', null,
    h('div', { class: 'stats', 'data-inference': '' },
      h('div', { class: 'stat' }, h('b', { 'data-stat': 'loads' }, fmt.num(inf.loads)), 'loads'),
      h('div', { class: 'stat' }, h('b', { 'data-stat': 'evictions' }, fmt.num(inf.evictions)), 'evictions'),
      h('div', { class: 'stat' }, h('b', { 'data-stat': 'fallbacks' }, fmt.num(inf.fallbacks)), 'provider fallbacks'),
      h('div', { class: 'stat' }, h('b', { 'data-stat': 'sessions' }, fmt.num((inf.sessions || []).length)), 'sessions'),
      h('div', { class: 'stat' }, h('b', { 'data-stat': 'kv-cache' }, `${fmt.bytes(inf.kv_cache_bytes)} / ${fmt.bytes(inf.kv_cache_limit_bytes)}`), 'KV cache')),
    kvBar.el,
    table([
      { label: 'Session', value: (s) => h('code', null, s.model) },
      { label: 'Provider', value: (s) => badge(s.provider) },
      { label: 'Runs', class: 'num', value: (s) => fmt.num(s.runs) },
      { label: 'Batched requests', class: 'num', value: (s) => fmt.num(s.batched_requests) },
      { label: 'Computes', class: 'num', value: (s) => fmt.num(s.computes) },
      { label: 'Errors', class: 'num', value: (s) => fmt.num(s.errors) },
      { label: 'LLM', value: (s) => (s.lm ? `${fmt.num(s.lm.open_sequences)} open, ${fmt.num(s.lm.runs)} decode runs, context ${fmt.num(s.lm.context)}` : '') },
    ], inf.sessions || [], { rowKey: (s) => s.model, empty: 'No sessions loaded on this node.' }));
}

async function nodesPage() {
  const r = await api.get('/api/v1/admin/nodes');
  const nodes = r.nodes || [];
  // Only a node with ONNX Runtime answers /admin/inference (the others say 503).
  const self = nodes.find((n) => n.this_node);
  const inf = self && self.inference ? await api.get('/api/v1/admin/inference') : null;
  const byLocation = new Map();
  for (const n of [...nodes].sort((a, b) => a.instance.localeCompare(b.instance))) {
    if (!byLocation.has(n.location)) byLocation.set(n.location, []);
    byLocation.get(n.location).push(n);
  }
  const locations = [...byLocation.keys()].sort();
  return h('div', null,
    pageHead('Fleet', `${nodes.length} node${nodes.length === 1 ? '' : 's'} in ${locations.length} location${locations.length === 1 ? '' : 's'}, from their heartbeats in the shared store (every 10 s; stale after 25 s).`),
    locations.length
      ? locations.map((loc) => h('div', { 'data-location': loc },
        section(`Location ${loc}`, badge(`${byLocation.get(loc).length} node${byLocation.get(loc).length === 1 ? '' : 's'}`), nodeTable(byLocation.get(loc)))))
      : h('p', { class: 'empty' }, 'No node heartbeats yet.'),
    inf ? inferenceCard(inf) : section('This node: inference', null, h('p', { class: 'empty' }, 'This node has no ONNX Runtime (inference is off).')));
}

// ---- metrics ----

async function metricsPage() {
  const text = await api.get('/metrics');
  const all = String(text).split('\n');
  const url = `${origin()}/metrics`;
  const filter = h('input', { id: 'metrics-filter', name: 'metrics-filter', type: 'text', placeholder: 'filter, e.g. helixflow_invocations_total', autocomplete: 'off', spellcheck: 'false' });
  const count = h('span', { class: 'muted small', 'data-metrics-count': '' });
  const pre = h('pre', { class: 'code metrics-text', id: 'metrics-text' });
  const show = () => {
    const q = filter.value.trim().toLowerCase();
    const lines = q ? all.filter((l) => l.toLowerCase().includes(q)) : all;
    replace(pre, lines.join('\n'));
    count.textContent = q ? `${lines.length} of ${all.length} lines` : `${all.length} lines`;
  };
  filter.addEventListener('input', show);
  show();
  const host = window.location.host;
  return h('div', null,
    pageHead('Metrics', 'This node\'s Prometheus metrics (OpenMetrics text), as a scrape sees them now.'),
    section('Scraping', null,
      h('p', null, 'Prometheus scrapes ', h('code', null, url),
        ' sending the platform admin key as a bearer token (Authorization: Bearer …), read from a file; every series carries location. Example scrape config (infra/prometheus/prometheus.yml):'),
      codeBlock([
        'scrape_configs:',
        '  - job_name: helixflow',
        '    metrics_path: /metrics',
        `    scheme: ${window.location.protocol.replace(':', '')}`,
        '    authorization:',
        '      type: Bearer',
        '      credentials_file: /etc/prometheus/helixflow-admin.key',
        '    static_configs:',
        `      - targets: ['${host}']`,
      ].join('\n'), { lang: 'yaml' })),
    section('Now', h('div', { class: ['actions', 'metrics-filter'] }, field('Filter', filter), count), pre));
}

export const routes = [
  { path: 'admin/tenants', title: 'Tenants', needs: 'platform', nav: { group: 'Platform', label: 'Tenants', order: 1 }, render: tenantsPage },
  { path: 'admin/nodes', title: 'Fleet', needs: 'platform', nav: { group: 'Platform', label: 'Fleet', order: 2 }, render: nodesPage },
  { path: 'admin/metrics', title: 'Metrics', needs: 'platform', render: metricsPage },
];
