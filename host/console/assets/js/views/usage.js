// Usage: requests, errors, tokens, cost and p95 latency by location over time (one
// GET .../usage per range, every metric at once), and the budget with the month's spend.

import { api, tenantPath } from '../api.js';
import { h, section, pageHead, table, button, fmt, badge, progress } from '../dom.js';
import { lineChart } from '../charts.js';

const RANGES = {
  '1h': { label: 'Last hour (per minute)', secs: 3600, step: '1m' },
  '24h': { label: 'Last 24 hours (per hour)', secs: 86400, step: '1h' },
  '30d': { label: 'Last 30 days (per day)', secs: 30 * 86400, step: '1d' },
};
const STEP_MS = { '1m': 60e3, '1h': 3600e3, '1d': 86400e3 };
const METRICS = ['requests', 'errors', 'prompt_tokens', 'completion_tokens', 'embedding_tokens', 'cost', 'latency_p95'];

const tokensOf = (p) => (p.prompt_tokens || 0) + (p.completion_tokens || 0) + (p.embedding_tokens || 0);

/** What each chart shows: a value per point (null = no data, e.g. no latency without requests). */
const CHARTS = [
  { key: 'requests', title: 'Requests', unit: 'requests', value: (p) => (p ? p.requests || 0 : 0), format: (v) => fmt.num(v) },
  { key: 'errors', title: 'Errors', unit: 'errors', value: (p) => (p ? p.errors || 0 : 0), format: (v) => fmt.num(v) },
  { key: 'tokens', title: 'Tokens (prompt + completion + embedding)', unit: 'tokens', value: (p) => (p ? tokensOf(p) : 0), format: (v) => fmt.num(v) },
  { key: 'cost', title: 'Cost', unit: 'USD', value: (p) => (p ? p.cost || 0 : 0), format: (v) => fmt.money(v) },
  {
    key: 'latency_p95', title: 'p95 latency', unit: 'ms', format: (v) => fmt.ms(v),
    value: (p) => (p && p.requests && p.latency_p95 !== undefined && p.latency_p95 !== null ? p.latency_p95 : null),
  },
];

/** Every step of [from, to): the API only returns points that have usage. */
function buckets(resp) {
  const step = STEP_MS[resp.step] || 60e3;
  const from = Date.parse(resp.from);
  const to = Date.parse(resp.to);
  const out = [];
  for (let t = Math.floor(from / step) * step; t < to && out.length < 1500; t += step) out.push(t);
  return out;
}

function locationOf(s) {
  return (s.group && s.group.location) || '(all)';
}

function charts(resp) {
  const times = buckets(resp);
  const series = (resp.series || []).map((s) => {
    const byTime = new Map((s.points || []).map((p) => [Date.parse(p.time), p]));
    return { label: locationOf(s), byTime };
  });
  return h('div', { class: ['grid-2', 'usage-charts'] }, CHARTS.map((c) => section(c.title, null,
    h('div', { 'data-chart-metric': c.key },
      lineChart(series.map((s) => ({ label: s.label, points: times.map((t) => ({ t, v: c.value(s.byTime.get(t)) })) })),
        { yLabel: c.unit, format: c.format, empty: 'No usage in this range.' })))));
}

function totals(resp) {
  const rows = (resp.series || []).map((s) => ({ location: locationOf(s), ...s.total }));
  return table([
    { label: 'Location', value: (r) => r.location },
    { label: 'Requests', class: 'num', value: (r) => fmt.num(r.requests) },
    { label: 'Errors', class: 'num', value: (r) => fmt.num(r.errors) },
    { label: 'Tokens', class: 'num', value: (r) => fmt.num(tokensOf(r)) },
    { label: 'Cost', class: 'num', value: (r) => fmt.money(r.cost || 0) },
    { label: 'p95 latency', class: 'num', value: (r) => (r.requests ? fmt.ms(r.latency_p95) : '') },
  ], rows, { empty: 'No usage in this range.', rowKey: (r) => r.location });
}

function limitsText(l) {
  if (!l) return '';
  const parts = [];
  if (l.monthly_spend !== undefined) parts.push(`cap ${fmt.money(l.monthly_spend)}/month`);
  if (l.soft_spend !== undefined) parts.push(`soft ${fmt.money(l.soft_spend)}`);
  if (l.rpm !== undefined) parts.push(`${fmt.num(l.rpm)} req/min`);
  if (l.tpm !== undefined) parts.push(`${fmt.num(l.tpm)} tokens/min`);
  return parts.join(' · ') || 'no limits';
}

function spendBar(spent, cap) {
  if (cap === undefined || cap === null || !(cap > 0)) return null;
  const p = progress();
  p.set(spent / cap);
  p.el.setAttribute('aria-label', 'share of the monthly cap spent');
  return p.el;
}

function budgetCard(b) {
  if (!b || !b.budget) {
    return section('Budget', null, h('p', { class: 'empty', 'data-budget': 'none' },
      'No budget is set for this tenant: nothing caps its spend or rate. Its admins set one with PUT /api/v1/tenants/{tenant}/budget (README "Budgets and rate limits").'));
  }
  const t = b.budget.tenant || {};
  const spend = (b.spend && b.spend.tenant) || 0;
  const callers = Object.entries(b.budget.callers || {}).map(([who, l]) => ({ who, l, spent: (b.spend && b.spend.callers && b.spend.callers[who]) || 0 }));
  const over = t.monthly_spend !== undefined && spend >= t.monthly_spend;
  const soft = t.soft_spend !== undefined && spend >= t.soft_spend;
  return section('Budget', over ? badge('cap reached', 'error') : soft ? badge('over soft limit', 'warn') : badge('within budget', 'ok'),
    h('dl', { class: 'kv', 'data-budget': 'set' },
      h('dt', null, 'Month'), h('dd', null, `${b.month || ''}${b.resets_at ? ` (resets ${fmt.time(b.resets_at)})` : ''}`),
      h('dt', null, 'Spent'), h('dd', { 'data-budget-spend': String(spend) },
        t.monthly_spend !== undefined ? `${fmt.money(spend)} of ${fmt.money(t.monthly_spend)}` : fmt.money(spend)),
      h('dt', null, 'Tenant limits'), h('dd', null, limitsText(t))),
    spendBar(spend, t.monthly_spend),
    callers.length ? h('h3', null, 'Per caller') : null,
    callers.length ? table([
      { label: 'Caller', value: (r) => h('code', null, r.who) },
      { label: 'Spent', class: 'num', value: (r) => fmt.money(r.spent) },
      { label: 'Limits', value: (r) => limitsText(r.l) },
    ], callers, { rowKey: (r) => r.who }) : null);
}

async function render(ctx) {
  const range = RANGES[ctx.query.range] ? ctx.query.range : '1h';
  const r = RANGES[range];
  const from = Math.floor(Date.now() / 1000) - r.secs;
  const [usage, budget] = await Promise.all([
    api.get(tenantPath('/usage'), { query: { from, step: r.step, group_by: 'location', metrics: METRICS.join(',') } }),
    api.get(tenantPath('/budget')),
  ]);
  const select = h('select', { id: 'usage-range', name: 'range', 'aria-label': 'Range' },
    Object.entries(RANGES).map(([k, v]) => h('option', { value: k }, v.label)));
  select.value = range;
  select.addEventListener('change', () => ctx.navigate(`#/usage?range=${select.value}`));
  const refresh = button('Refresh', () => ctx.rerender(), { action: 'refresh-usage' });
  return h('div', { 'data-range': range },
    pageHead('Usage', `${fmt.time(usage.from)} – ${fmt.time(usage.to)}, by location. Metered where each invocation ran, flushed every 10 s.`,
      [select, refresh]),
    section('By location', null, totals(usage)),
    charts(usage),
    budgetCard(budget));
}

export const routes = [
  { path: 'usage', title: 'Usage', needs: 'read', nav: { group: 'Tenant', label: 'Usage', order: 6 }, render },
];
