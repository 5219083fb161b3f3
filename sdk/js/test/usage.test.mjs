// Usage and dashboards: invocations made through the client are metered and read back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadRequestError } from 'helixflow';
import { client, eventually, guest, uniq } from './helpers.mjs';

const METERED = uniq('js-metered');

test('usage counts the invocations made through the client', async () => {
  const c = client();
  await c.functions.deploy(METERED, guest('echo-event'));
  for (let i = 0; i < 3; i++) await c.functions.invoke(METERED, { i });
  const usage = await eventually('the usage to be flushed', async () => {
    const u = await c.usage.query({ groupBy: ['function', 'trigger'], metrics: ['requests', 'errors', 'gb_seconds'] });
    const s = u.series.find((x) => x.group.function === METERED);
    return s?.total.requests >= 3 ? u : null;
  });
  assert.deepEqual(usage.group_by, ['function', 'trigger']);
  assert.deepEqual(usage.metrics, ['requests', 'errors', 'gb_seconds']);
  const s = usage.series.find((x) => x.group.function === METERED);
  assert.equal(s.group.trigger, 'invoke', 'the /invoke route');
  assert.equal(s.total.requests, 3);
  assert.equal(s.total.errors, 0);
  assert.ok(s.total.gb_seconds > 0);
  // A time range as Dates; a bad parameter is the API's 400 with its code.
  const now = new Date();
  const ranged = await c.usage.query({ from: new Date(now.getTime() - 3600_000), to: now, step: '1h' });
  assert.ok(Array.isArray(ranged.series));
  const err = await c.usage.query({ metrics: ['bogus'] }).catch((e) => e);
  assert.ok(err instanceof BadRequestError, `${err}`);
  assert.equal(err.code, 'invalid_metric');
  const prices = await c.usage.prices();
  assert.ok(Array.isArray(prices.prices));
});

test('analytics: create, read and delete a dashboard', async () => {
  const c = client();
  const d = await c.analytics.createDashboard({ name: 'js', metrics: ['error_rate', 'model_usage'] });
  assert.match(d.id, /^[0-9a-f]{32}$/);
  assert.equal(d.name, 'js');
  assert.ok((await c.analytics.listDashboards()).some((x) => x.id === d.id));
  assert.equal((await c.analytics.getDashboard(d.id)).id, d.id);
  const data = await c.analytics.dashboardData(d.id);
  assert.ok(data && typeof data === 'object', JSON.stringify(data));
  await c.analytics.deleteDashboard(d.id);
  assert.ok(!(await c.analytics.listDashboards()).some((x) => x.id === d.id));
});
