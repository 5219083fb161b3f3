// The tenant's audit log: every control-plane write (and refusal) with who, what, the
// outcome and the request id, newest first, with a client-side filter.

import { api, session, tenantPath } from '../api.js';
import { h, table, section, pageHead, fmt, badge } from '../dom.js';

const LIMIT = 200;

/** A path with line-break opportunities after each '/' (text nodes and <wbr>). */
function breakable(path) {
  return path.split('/').flatMap((part, i) => (i ? ['/', h('wbr'), part] : [part]));
}

async function auditPage() {
  const data = await api.get(tenantPath('/audit'), { query: { limit: LIMIT } });
  const at = (r) => Date.parse(r.at) || 0;
  const records = (data.records || []).slice().sort((a, b) => at(b) - at(a));

  const grid = table([
    { label: 'Time', class: 'nowrap', value: (r) => h('span', { title: r.at }, fmt.time(r.at)) },
    { label: 'Who', value: (r) => r.actor || '' },
    { label: 'Action', value: (r) => breakable(r.action || '') },
    { label: 'Target', value: (r) => h('span', { class: 'mono small' }, breakable(r.target || '')) },
    { label: 'Outcome', value: (r) => badge(r.outcome || '', r.outcome === 'ok' ? 'ok' : 'error') },
    { label: 'Status', class: 'num', value: (r) => (r.status !== undefined && r.status !== null ? String(r.status) : '') },
    {
      label: 'Source / request ID',
      value: (r) => [h('div', { class: 'audit-source' }, r.source || ''), h('code', { class: 'small muted', 'data-request-id': r.request_id }, r.request_id || '')],
    },
  ], records, { empty: 'No audit records yet.', rowKey: (r) => r.request_id, cls: 'audit' });

  // Filter: every field of a record, matched case-insensitively; rows are hidden, not rebuilt.
  const rows = [...grid.querySelectorAll('tbody tr')].map((tr, i) => {
    const r = records[i];
    const key = [r.at, r.actor, r.action, r.target, r.outcome, r.status, r.source, r.request_id].join(' ').toLowerCase();
    return [tr, key];
  });
  const filter = h('input', { type: 'text', id: 'audit-filter', name: 'filter', class: 'filter', placeholder: 'Filter: who, action, target, outcome…', autocomplete: 'off', 'aria-label': 'Filter the audit log' });
  const count = h('span', { class: 'muted small', 'data-count': '' });
  const apply = () => {
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const [tr, key] of rows) {
      const hit = words.every((w) => key.includes(w));
      tr.classList.toggle('hidden', !hit);
      if (hit) shown += 1;
    }
    count.textContent = words.length ? `${shown} of ${rows.length}` : `${rows.length} record${rows.length === 1 ? '' : 's'}`;
  };
  filter.addEventListener('input', apply);
  apply();

  return h('div', { class: 'view-audit' },
    pageHead('Audit log', `Control-plane changes and refusals in tenant ${session.tenant}, newest first (the latest ${LIMIT}).`),
    section('Records', [count, filter], grid));
}

export const routes = [
  { path: 'audit', title: 'Audit log', needs: 'read', nav: { group: 'Tenant', label: 'Audit', order: 5 }, render: auditPage },
];
