// Functions: the tenant's list (with a client-side filter and the deploy-by-upload
// form) and one function's page (versions, aliases with flip and rollback, config,
// a live log tail, delete). Write actions are only rendered when the role may do them.

import { api, upload, can, session, tenantPath, enc, headerJson } from '../api.js';
import {
  h, replace, table, section, pageHead, button, busy, errorBox, errorText, toast,
  confirmAction, field, progress, fmt, badge,
} from '../dom.js';

const LOG_LIMIT = 100;
const LOG_POLL_MS = 2000;

/** A button whose async handler runs with the button disabled; errors become a toast. */
function act(label, action, fn, kind = 'small') {
  const b = button(label, null, { action, kind });
  b.addEventListener('click', busy(b, fn));
  return b;
}

function functionHref(name) {
  return `#/functions/${enc(name)}`;
}

/** Parses a JSON object typed by the user; throws an Error naming `what`. */
function parseObject(text, what) {
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what} is not valid JSON: ${e.message}`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
  return v;
}

function limitsText(cfg) {
  const parts = [];
  if (cfg.memory_mb) parts.push(`${cfg.memory_mb} MB`);
  if (cfg.timeout_ms) parts.push(`${fmt.num(cfg.timeout_ms)} ms`);
  if (cfg.max_concurrency) parts.push(`×${cfg.max_concurrency}`);
  return parts.length ? parts.join(' · ') : 'defaults';
}

// ---- the list ----

function functionsTable(fns) {
  return table([
    { label: 'Name', value: (f) => h('a', { href: functionHref(f.name), 'data-link': 'function' }, f.name) },
    { label: 'Latest', class: 'num', value: (f) => (f.latest_version ? `v${f.latest_version}` : '') },
    { label: 'Limits', value: (f) => limitsText(f.config || {}) },
    { label: 'Outbound', value: (f) => ((f.config && f.config.allow_outbound) || []).join(', ') || h('span', { class: 'muted' }, 'none') },
    { label: 'Access', value: (f) => (f.config && f.config.public ? badge('public', 'warn') : badge('key')) },
    { label: 'Updated', value: (f) => fmt.time(f.updated_at) },
  ], fns, { empty: 'No functions yet.', rowKey: (f) => f.name, cls: 'functions' });
}

function deployCard(onDeployed, prefill) {
  const name = h('input', { type: 'text', id: 'deploy-name', name: 'name', placeholder: 'hello', autocomplete: 'off', value: prefill || '' });
  const file = h('input', { type: 'file', id: 'deploy-file', name: 'file', accept: '.wasm,application/wasm' });
  const alias = h('input', { type: 'text', id: 'deploy-alias', name: 'alias', value: 'live', autocomplete: 'off' });
  const description = h('input', { type: 'text', id: 'deploy-description', name: 'description', autocomplete: 'off' });
  const config = h('textarea', {
    id: 'deploy-config', name: 'config', rows: '2', spellcheck: 'false',
    placeholder: '{"memory_mb": 128, "timeout_ms": 5000, "allow_outbound": ["api.example.com"]}',
  });
  const bar = progress();
  bar.el.classList.add('hidden');
  bar.el.id = 'deploy-progress';
  const result = h('div', { id: 'deploy-result', class: 'deploy-result', 'aria-live': 'polite' });

  // A file named like a function fills in an empty name.
  file.addEventListener('change', () => {
    const f = file.files[0];
    if (f && !name.value.trim()) {
      const guess = f.name.replace(/\.wasm$/i, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+|-+$/g, '');
      if (guess) name.value = guess;
    }
  });

  const deploy = button('Deploy', null, { action: 'deploy', kind: 'primary' });
  deploy.addEventListener('click', busy(deploy, async () => {
    replace(result);
    const fn = name.value.trim();
    const f = file.files[0];
    try {
      if (!fn) throw new Error('Enter a function name.');
      if (!f) throw new Error('Choose a .wasm component to upload.');
      const headers = {};
      if (config.value.trim()) headers['x-helixflow-config'] = headerJson(parseObject(config.value, 'The config'));
      bar.set(0);
      bar.el.classList.remove('hidden');
      const out = await upload('POST', tenantPath(`/functions/${enc(fn)}/versions`), f, {
        query: { alias: alias.value.trim(), description: description.value.trim() },
        headers,
        onProgress: (sent, total) => bar.set(total ? sent / total : 0),
      });
      const v = out.version;
      replace(result, h('div', { class: 'deploy-ok', 'data-version': v.version, 'data-function': v.function },
        badge('deployed', 'ok'), ' ',
        h('a', { href: functionHref(v.function) }, `${v.function} v${v.version}`),
        ` · ${fmt.bytes(v.size)} · sha256 ${v.sha256.slice(0, 12)}…`,
        out.alias ? ` · alias ${out.alias.name} → v${out.alias.version}` : ''));
      toast(`Deployed ${v.function} v${v.version}`, 'ok');
    } catch (e) {
      bar.el.classList.add('hidden');
      replace(result, errorBox(e));
      return;
    }
    // The deploy succeeded whatever happens to the list reload: its failure is a toast,
    // not an error in the deploy result.
    try {
      await onDeployed();
    } catch (e) {
      toast(`Deployed, but reloading the list failed: ${errorText(e)}`, 'error');
    }
  }));

  return section('Deploy', null,
    h('p', { class: 'muted small' }, 'Upload a WebAssembly component: a new version of the function (created if new), optionally pointed to by an alias.'),
    h('div', { class: 'row top' },
      field('Function name', name), field('Component (.wasm)', file),
      field('Alias', alias, 'empty: no alias'), field('Description', description, 'optional')),
    field('Config (JSON, optional)', config, 'memory_mb, timeout_ms, max_concurrency, allow_outbound, public, env, async_invoke, schedules'),
    h('div', { class: 'actions' }, deploy),
    bar.el, result);
}

async function listPage(ctx) {
  const load = async () => {
    const data = await api.get(tenantPath('/functions'));
    return (data.functions || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  };
  let fns = await load();

  const filter = h('input', { type: 'text', id: 'function-filter', name: 'filter', class: 'filter', placeholder: 'Filter by name', autocomplete: 'off', 'aria-label': 'Filter functions' });
  const count = h('span', { class: 'muted small', 'data-count': '' });
  const host = h('div');
  const none = h('p', { class: 'empty hidden', 'data-no-match': '' }, 'No function matches the filter.');
  let rows = [];

  const applyFilter = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const [tr, key] of rows) {
      const hit = !q || key.includes(q);
      tr.classList.toggle('hidden', !hit);
      if (hit) shown += 1;
    }
    none.classList.toggle('hidden', shown > 0 || rows.length === 0);
    count.textContent = q ? `${shown} of ${rows.length}` : `${rows.length} function${rows.length === 1 ? '' : 's'}`;
  };
  const draw = () => {
    const t = functionsTable(fns);
    rows = [...t.querySelectorAll('tbody tr')].map((tr) => [tr, (tr.dataset.row || '').toLowerCase()]);
    replace(host, t);
    applyFilter();
  };
  filter.addEventListener('input', applyFilter);
  draw();

  const refresh = async () => {
    fns = await load();
    if (ctx.isCurrent()) draw();
  };

  return h('div', { class: 'view-functions' },
    pageHead('Functions', `WebAssembly functions of tenant ${session.tenant}`),
    can('deploy') ? deployCard(refresh, ctx.query.deploy) : null,
    section('Functions', [count, filter], host, none));
}

// ---- one function ----

function versionsCard(detail, { onChange }) {
  const aliasesOf = (v) => detail.aliases.filter((a) => a.version === v).map((a) => a.name);
  const versions = detail.versions.slice().sort((a, b) => b.version - a.version);
  const cols = [
    { label: 'Version', value: (v) => `v${v.version}` },
    { label: 'Created', value: (v) => fmt.time(v.created_at) },
    { label: 'Size', class: 'num', value: (v) => fmt.bytes(v.size) },
    { label: 'SHA-256', value: (v) => h('code', { title: v.sha256 }, `${v.sha256.slice(0, 12)}…`) },
    { label: 'Exports', value: (v) => [v.exports && v.exports.http ? badge('http') : null, ' ', v.exports && v.exports.event ? badge('event') : null] },
    { label: 'Description', value: (v) => v.description || '' },
    { label: 'Aliases', value: (v) => aliasesOf(v.version).map((n) => badge(n, 'ok')) },
  ];
  if (can('deploy')) {
    cols.push({
      label: '',
      value: (v) => {
        const used = aliasesOf(v.version);
        if (used.length) return h('span', { class: 'muted small' }, 'in use');
        return act('Delete', 'delete-version', async () => {
          if (!await confirmAction(`Delete ${detail.function.name} v${v.version}?`, 'The version and its component are removed; aliases never point at a deleted version.')) return;
          await api.del(tenantPath(`/functions/${enc(detail.function.name)}/versions/${v.version}`));
          toast(`Deleted v${v.version}`, 'ok');
          await onChange();
        }, 'small danger');
      },
    });
  }
  return section('Versions', null, table(cols, versions, { empty: 'No versions.', rowKey: (v) => String(v.version), cls: 'versions' }));
}

function aliasesCard(detail, { onChange }) {
  const fname = detail.function.name;
  const aliasPath = (a) => tenantPath(`/functions/${enc(fname)}/aliases/${enc(a)}`);
  const versionNums = detail.versions.map((v) => v.version).sort((a, b) => b - a);
  const versionSelect = (props, selected) => h('select', props,
    versionNums.map((n) => h('option', { value: String(n), selected: n === selected }, `v${n}`)));

  const cols = [
    { label: 'Alias', value: (a) => h('strong', null, a.name) },
    { label: 'Version', value: (a) => `v${a.version}` },
    { label: 'History', value: (a) => (a.history && a.history.length ? a.history.map((n) => `v${n}`).join(' → ') : h('span', { class: 'muted' }, 'none')) },
    { label: 'Updated', value: (a) => fmt.time(a.updated_at) },
  ];
  if (can('deploy')) {
    cols.push({
      label: '',
      value: (a) => {
        const sel = versionSelect({ name: 'flip-version', 'data-alias': a.name, 'aria-label': `Version for ${a.name}` }, a.version);
        const flip = act('Flip', 'flip-alias', async () => {
          const version = Number(sel.value);
          const r = await api.put(aliasPath(a.name), { version });
          toast(`${a.name} → v${r.version}`, 'ok');
          await onChange();
        });
        const hasHistory = !!(a.history && a.history.length);
        const rollback = act('Rollback', 'rollback-alias', async () => {
          const r = await api.post(`${aliasPath(a.name)}/rollback`);
          toast(`${a.name} rolled back to v${r.version}`, 'ok');
          await onChange();
        });
        if (!hasHistory) {
          rollback.disabled = true;
          rollback.title = 'no earlier version to roll back to';
        }
        const del = act('Delete', 'delete-alias', async () => {
          if (!await confirmAction(`Delete alias ${a.name}?`, `Requests to ${fname}:${a.name} will fail until it is set again.`)) return;
          await api.del(aliasPath(a.name));
          toast(`Deleted alias ${a.name}`, 'ok');
          await onChange();
        }, 'small danger');
        return h('div', { class: 'actions' }, sel, flip, rollback, del);
      },
    });
  }

  let create = null;
  if (can('deploy') && versionNums.length) {
    const name = h('input', { type: 'text', id: 'alias-name', name: 'alias-name', placeholder: 'new alias, e.g. canary', autocomplete: 'off', 'aria-label': 'New alias name' });
    const sel = versionSelect({ id: 'alias-version', name: 'alias-version', 'aria-label': 'Version for the new alias' }, versionNums[0]);
    create = h('div', { class: 'actions alias-create' }, name, sel, act('Set alias', 'create-alias', async () => {
      const a = name.value.trim();
      if (!a) { toast('Enter an alias name.', 'error'); return; }
      const r = await api.put(aliasPath(a), { version: Number(sel.value) });
      toast(`${r.name} → v${r.version}`, 'ok');
      await onChange();
    }));
  }
  return section('Aliases', null,
    table(cols, detail.aliases, { empty: 'No aliases: requests name a version, or set one below.', rowKey: (a) => a.name, cls: 'aliases' }),
    create);
}

function configCard(fname, config, tenant) {
  const base = tenantPath(`/functions/${enc(fname)}/config`);
  const text = fmt.json(config || {});
  const editable = can('deploy');
  const area = h('textarea', {
    id: 'config-json', name: 'config', spellcheck: 'false', readonly: !editable,
    rows: String(Math.min(24, Math.max(8, text.split('\n').length + 1))),
  });
  area.value = text;
  const lim = (tenant && tenant.limits) || {};
  const hint = h('p', { class: 'muted small' },
    `Tenant limits: memory_mb ≤ ${lim.max_memory_mb ?? '?'}, timeout_ms ≤ ${lim.max_timeout_ms ?? '?'}. `,
    'allow_outbound lists the hosts the function may call (host, host:port or *.domain; empty: none). ',
    editable ? 'Saving replaces the whole config.' : 'Read-only for your role.');
  const actions = editable ? act('Save config', 'save-config', async () => {
    let body;
    try { body = parseObject(area.value, 'The config'); } catch (e) { toast(e.message, 'error'); return; }
    const r = await api.put(base, body);
    area.value = fmt.json(r.config || {});
    toast('Config saved', 'ok');
  }, 'primary') : null;
  return section('Config', actions, hint, area);
}

function logRecord(r) {
  const dur = r.duration_us !== undefined ? fmt.ms(r.duration_us / 1000) : '';
  const meta = [fmt.time(r.at), r.version !== undefined ? `v${r.version}` : '', r.trigger, r.outcome, dur, r.request_id, r.truncated ? '(truncated)' : '']
    .filter(Boolean).join('  ');
  const text = (s) => (s.endsWith('\n') ? s : `${s}\n`);
  return h('span', { class: ['log-rec', r.outcome && r.outcome !== 'ok' && 'failed'], 'data-request-id': r.request_id },
    h('span', { class: 'meta' }, `${meta}\n`),
    r.stdout ? h('span', { class: 'stdout' }, text(r.stdout)) : null,
    r.stderr ? h('span', { class: 'stderr' }, text(r.stderr)) : null);
}

/** The live log tail: polls every 2 s until the page is left (or paused). */
function logsCard(ctx, fname, first) {
  const path = tenantPath(`/functions/${enc(fname)}/logs`);
  const pre = h('pre', { class: 'logs', id: 'logs', 'aria-live': 'off' });
  const status = h('span', { class: 'muted small', 'data-logs-status': '' });
  let lastKey = null;
  let timer = null;
  let inflight = null;
  let stopped = false;
  let paused = false;

  const draw = (logs) => {
    const recs = logs.slice().sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const key = recs.map((r) => `${r.request_id}@${r.at}`).join(',');
    if (key === lastKey) return;
    lastKey = key;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.dataset.count = String(recs.length);
    if (!recs.length) replace(pre, h('span', { class: 'meta' }, 'No log records yet: invoke the function to see its output here.'));
    else replace(pre, recs.map(logRecord));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const stamp = () => { status.textContent = `${paused ? 'paused' : 'live, every 2 s'} · updated ${new Date().toLocaleTimeString()}`; };

  const poll = async () => {
    timer = null;
    if (stopped || paused) return;
    if (!document.hidden) {
      try {
        inflight = api.get(path, { query: { limit: LOG_LIMIT } });
        const r = await inflight;
        if (stopped || !ctx.isCurrent()) return;
        draw(r.logs || []);
        stamp();
      } catch (e) {
        if (stopped) return;
        status.textContent = `log tail failed: ${errorText(e)}`;
        // The function is gone (deleted elsewhere): stop asking.
        if (e.status === 404 || e.status === 401 || e.status === 403) stopped = true;
      } finally {
        inflight = null;
      }
    }
    if (!stopped && !paused) timer = setTimeout(poll, LOG_POLL_MS);
  };
  // Stops polling; resolves once a request already on its way has been answered.
  const stop = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
    return inflight ? inflight.then(() => {}, () => {}) : Promise.resolve();
  };
  ctx.onLeave(stop);

  const pause = button('Pause', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (timer) { clearTimeout(timer); timer = null; }
    stamp();
    if (!paused) poll();
  }, { action: 'pause-logs', kind: 'small' });

  draw(first);
  stamp();
  timer = setTimeout(poll, LOG_POLL_MS);
  return { el: section('Logs', [status, pause], pre), stop };
}

async function detailPage(ctx) {
  const fname = ctx.params.name;
  const base = tenantPath(`/functions/${enc(fname)}`);
  const [detail, tenant, logs] = await Promise.all([
    api.get(base),
    api.get(tenantPath('')),
    api.get(`${base}/logs`, { query: { limit: LOG_LIMIT } }),
  ]);

  const versionsHost = h('div');
  const aliasesHost = h('div');
  const head = h('div');
  let current = detail;
  const drawHead = () => {
    const f = current.function;
    const live = current.aliases.map((a) => `${a.name} → v${a.version}`).join(', ');
    const actions = [];
    if (can('invoke')) actions.push(h('a', { class: 'btn', href: `#/playground/invoke?function=${enc(f.name)}`, 'data-action': 'invoke-function' }, 'Invoke'));
    if (can('deploy')) {
      actions.push(h('a', { class: 'btn', href: `#/functions?deploy=${enc(f.name)}`, 'data-action': 'deploy-version' }, 'Deploy a version'));
      actions.push(act('Delete function', 'delete-function', async () => {
        if (!await confirmAction(`Delete function ${f.name}?`, `All ${current.versions.length} version(s), its aliases and config are deleted. This cannot be undone.`, 'Delete function')) return;
        await logTail.stop();
        const r = await api.del(base);
        toast(`Deleted ${f.name} (${r.versions} version${r.versions === 1 ? '' : 's'})`, 'ok');
        ctx.navigate('#/functions');
      }, 'danger'));
    }
    replace(head, pageHead(f.name,
      `latest v${f.latest_version} · ${live ? `aliases ${live}` : 'no aliases'} · updated ${fmt.time(f.updated_at)}`,
      actions));
  };
  const drawTables = () => {
    replace(versionsHost, versionsCard(current, { onChange: refresh }));
    replace(aliasesHost, aliasesCard(current, { onChange: refresh }));
  };
  async function refresh() {
    const d = await api.get(base);
    if (!ctx.isCurrent()) return;
    current = d;
    drawHead();
    drawTables();
  }

  const logTail = logsCard(ctx, fname, logs.logs || []);
  drawHead();
  drawTables();
  return h('div', { class: 'view-function', 'data-function': fname },
    h('p', { class: 'crumbs small' }, h('a', { href: '#/functions' }, 'Functions'), ' / ', fname),
    head,
    versionsHost,
    aliasesHost,
    logTail.el,
    configCard(fname, detail.function.config, tenant));
}

export const routes = [
  { path: 'functions', title: 'Functions', needs: 'read', nav: { group: 'Tenant', label: 'Functions', order: 1 }, render: listPage },
  { path: 'functions/:name', title: 'Function', needs: 'read', render: detailPage },
];
