// Event invocations: the tenant's pending (queued, maybe retrying) and failed (dead
// lettered) asynchronous invocations, one request per page; a row expands to the event's
// record (payload and error shown as text); failed ones can be replayed. Replaying is a
// POST under the tenant, which the API allows to deploy-capable roles (admin, developer).

import { api, can, tenantPath, enc } from '../api.js';
import { h, replace, table, section, pageHead, button, busy, errorBox, toast, fmt, badge } from '../dom.js';

const LIMIT = 200;

function errorOf(e) {
  if (!e) return '';
  if (typeof e === 'string') return e;
  const type = e.error_type || e.errorType || e.code;
  const msg = e.message || e.errorMessage || '';
  return type ? `${type}: ${msg}` : msg || JSON.stringify(e);
}

/** The stored payload (base64) as text: pretty JSON, UTF-8 text, or base64 when binary. */
function decodePayload(b64) {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch (_) {
    return { text: b64, note: 'not base64' };
  }
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (_) {
    return { text: b64, note: `binary, ${fmt.bytes(bytes.length)} (base64)` };
  }
  try {
    return { text: JSON.stringify(JSON.parse(text), null, 2), note: `JSON, ${fmt.bytes(bytes.length)}` };
  } catch (_) {
    return { text, note: `text, ${fmt.bytes(bytes.length)}` };
  }
}

function when(ev) {
  if (ev.status === 'failed') return fmt.time(ev.finished_at_ms || ev.accepted_at_ms);
  return fmt.time(ev.accepted_at_ms);
}

function detailBody(ev) {
  const kv = [
    ['ID', h('code', null, ev.id)],
    ['Function', `${ev.function}${ev.version !== undefined && ev.version !== null ? ` v${ev.version}` : ''}`],
    ['Status', ev.status],
    ev.condition ? ['Condition', ev.condition] : null,
    ['Attempts', String(ev.attempts ?? '')],
    ev.failures !== undefined ? ['Failures', String(ev.failures)] : null,
    ['Accepted', fmt.time(ev.accepted_at_ms)],
    ev.due_at_ms ? ['Next attempt', fmt.time(ev.due_at_ms)] : null,
    ev.finished_at_ms ? ['Finished', fmt.time(ev.finished_at_ms)] : null,
    ['Source', ev.source || ''],
    ev.replayed_as ? ['Replayed as', h('code', null, ev.replayed_as)] : null,
  ].filter(Boolean);
  const payload = ev.payload_b64 !== undefined && ev.payload_b64 !== null ? decodePayload(ev.payload_b64) : null;
  return h('div', { class: 'event-detail-body' },
    h('dl', { class: 'kv' }, kv.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
    h('h3', null, 'Error'),
    ev.last_error ? h('pre', { class: 'logs', 'data-field': 'error' }, fmt.json(ev.last_error)) : h('p', { class: 'muted' }, 'none'),
    h('h3', null, 'Payload', payload ? h('span', { class: 'muted small' }, ` (${payload.note})`) : null),
    payload
      ? h('pre', { class: 'logs', 'data-field': 'payload' }, payload.text)
      : h('p', { class: 'muted' }, 'The payload is shown for failed events only.'));
}

async function eventsPage(ctx) {
  const status = ctx.query.status || '';
  const fn = ctx.query.function || '';
  const data = await api.get(tenantPath('/events'), { query: { status, function: fn, limit: LIMIT } });
  const t = (ev) => ev.finished_at_ms || ev.accepted_at_ms || 0;
  const events = (data.events || []).slice().sort((a, b) => t(b) - t(a));

  // Filters live in the URL (#/events?status=failed&function=x): one request per view.
  const go = (s, f) => {
    const q = new URLSearchParams();
    if (s) q.set('status', s);
    if (f) q.set('function', f);
    const qs = q.toString();
    ctx.navigate(`#/events${qs ? `?${qs}` : ''}`);
  };
  const statusSel = h('select', { id: 'event-status', name: 'status', 'aria-label': 'Status' },
    [['', 'Pending and failed'], ['failed', 'Failed'], ['pending', 'Pending']]
      .map(([v, l]) => h('option', { value: v, selected: v === status }, l)));
  const names = [...new Set(events.map((e) => e.function).concat(fn ? [fn] : []))].sort();
  const fnSel = h('select', { id: 'event-function', name: 'function', 'aria-label': 'Function' },
    h('option', { value: '' }, 'All functions'),
    names.map((n) => h('option', { value: n, selected: n === fn }, n)));
  statusSel.addEventListener('change', () => go(statusSel.value, fnSel.value));
  fnSel.addEventListener('change', () => go(statusSel.value, fnSel.value));
  const refresh = button('Refresh', () => ctx.rerender(), { action: 'refresh-events', kind: 'small' });

  const mayReplay = can('deploy');
  let columns;
  const toggleDetail = (ev, btn) => async () => {
    const tr = btn.closest('tr');
    const open = tr.nextElementSibling;
    if (open && open.classList.contains('event-detail')) {
      open.remove();
      btn.setAttribute('aria-expanded', 'false');
      return;
    }
    const cell = h('td', { colspan: String(columns.length) }, h('span', { class: 'muted' }, 'Loading…'));
    const row = h('tr', { class: 'event-detail', 'data-detail': ev.id }, cell);
    tr.after(row);
    btn.setAttribute('aria-expanded', 'true');
    try {
      const full = await api.get(tenantPath(`/events/${enc(ev.id)}`));
      replace(cell, detailBody(full));
    } catch (e) {
      replace(cell, errorBox(e));
    }
  };
  const replayCell = (ev) => {
    if (ev.status !== 'failed') return null;
    if (ev.replayed_as) return h('span', { class: 'muted small', 'data-replayed-as': ev.replayed_as }, 'replayed as ', h('code', null, ev.replayed_as));
    if (!mayReplay) return null;
    const holder = h('span');
    const b = button('Replay', null, { action: 'replay-event', kind: 'small primary' });
    b.addEventListener('click', busy(b, async () => {
      const r = await api.post(tenantPath(`/events/${enc(ev.id)}/replay`));
      replace(holder, h('span', { class: 'replay-result', 'data-replay-id': r.id }, badge('202 accepted', 'ok'), ' as ', h('code', null, r.id)));
      toast(`Replay accepted: ${r.id}`, 'ok');
    }));
    return replace(holder, b);
  };
  columns = [
    { label: 'ID', value: (ev) => h('code', { class: 'small' }, ev.id) },
    { label: 'Function', value: (ev) => [h('a', { href: `#/functions/${enc(ev.function)}` }, ev.function), ev.version ? h('span', { class: 'muted small' }, ` v${ev.version}`) : null] },
    { label: 'Status', value: (ev) => [badge(ev.status, ev.status === 'failed' ? 'error' : 'warn'), ev.condition ? h('div', { class: 'muted small' }, ev.condition) : null] },
    { label: 'Attempts', class: 'num', value: (ev) => String(ev.attempts ?? '') },
    { label: 'Error', value: (ev) => h('span', { class: 'event-error' }, errorOf(ev.last_error)) },
    { label: 'Time', value: (ev) => [when(ev), ev.status === 'pending' && ev.due_at_ms ? h('div', { class: 'muted small' }, `next try ${fmt.time(ev.due_at_ms)}`) : null] },
    {
      label: '',
      value: (ev) => {
        const d = button('Details', null, { action: 'event-detail', kind: 'small' });
        d.setAttribute('aria-expanded', 'false');
        d.addEventListener('click', busy(d, toggleDetail(ev, d)));
        return h('div', { class: 'actions' }, d, replayCell(ev));
      },
    },
  ];

  const failed = events.filter((e) => e.status === 'failed').length;
  const pending = events.length - failed;
  return h('div', { class: 'view-events' },
    pageHead('Event invocations', 'Asynchronous invocations still queued (pending, maybe retrying) and those that failed after their retries.'),
    section(`${failed} failed · ${pending} pending`, [fnSel, statusSel, refresh],
      table(columns, events, { empty: 'No pending or failed events.', rowKey: (ev) => ev.id, cls: 'events' }),
      events.length >= LIMIT ? h('p', { class: 'muted small' }, `Showing the first ${LIMIT}.`) : null));
}

export const routes = [
  { path: 'events', title: 'Events', needs: 'read', nav: { group: 'Tenant', label: 'Events', order: 4 }, render: eventsPage },
];
