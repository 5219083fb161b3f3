// Keys, access keys and tenants; what a key may do (403) and a revoked key (401).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AuthenticationError,
  BadRequestError,
  Client,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
} from 'helixflow';
import { admin, baseURL, client, guest, tenant, uniq } from './helpers.mjs';

const TENANT = uniq('js-tenant');

test('create a key, use it, list it, revoke it', async () => {
  const c = client();
  const created = await c.keys.create({ name: 'js-viewer', role: 'viewer' });
  assert.match(created.key, /^hfk_[0-9a-f]{12}_/);
  assert.equal(created.prefix, created.key.slice(4, 16));
  assert.equal(created.role, 'viewer');
  assert.equal(created.revoked, false);
  assert.ok((await c.keys.list()).some((k) => k.prefix === created.prefix && k.key === undefined), 'listed, without the key');

  const viewer = new Client({ apiKey: created.key, baseURL: baseURL(), tenant: tenant() });
  assert.ok(Array.isArray(await viewer.functions.list()), 'a viewer reads');
  const denied = await viewer.functions.deploy('js-denied', guest('hello')).catch((e) => e);
  assert.ok(denied instanceof PermissionDeniedError, `${denied}`);
  assert.equal(denied.status, 403);
  assert.ok(denied.code, 'a code');
  assert.ok(denied.requestId, 'a request id');

  const revoked = await c.keys.revoke(created.prefix);
  assert.equal(revoked.revoked, true);
  const err = await viewer.functions.list().catch((e) => e);
  assert.ok(err instanceof AuthenticationError, `${err}`);
  assert.equal(err.status, 401);

  const bad = await c.keys.create({ name: 'x', role: 'superuser' }).catch((e) => e);
  assert.ok(bad instanceof BadRequestError, `${bad}`);
  assert.equal(bad.code, 'invalid_role');
});

test('an unknown key is a 401 AuthenticationError', async () => {
  const c = new Client({ apiKey: 'hfk_000000000000_nope', baseURL: baseURL(), tenant: tenant() });
  const err = await c.functions.list().catch((e) => e);
  assert.ok(err instanceof AuthenticationError, `${err}`);
  assert.equal(err.status, 401);
});

test('access keys: create, list, revoke', async () => {
  const c = client();
  const k = await c.accessKeys.create({ name: 'js-sigv4' });
  assert.match(k.access_key_id, /^HFAK[A-Z2-7]{16}$/);
  assert.ok(k.secret_access_key.length >= 20);
  assert.equal(k.role, 'invoker');
  assert.match(k.account_id, /^\d{12}$/);
  assert.ok((await c.accessKeys.list()).some((a) => a.access_key_id === k.access_key_id && !a.secret_access_key));
  assert.equal((await c.accessKeys.revoke(k.access_key_id)).revoked, true);
});

test('tenants (platform admin): create, get, list; a tenant key may not', async () => {
  const a = admin();
  const t = await a.tenants.create(TENANT, { limits: { max_memory_mb: 128, max_timeout_ms: 10_000 } });
  assert.equal(t.name, TENANT);
  assert.equal(t.limits.max_memory_mb, 128);
  assert.equal((await a.tenants.get(TENANT)).limits.max_timeout_ms, 10_000);
  assert.ok((await a.tenants.list()).some((x) => x.name === TENANT));
  await assert.rejects(a.tenants.create(TENANT), ConflictError);
  await assert.rejects(a.tenants.get('js-no-such-tenant'), NotFoundError);
  await assert.rejects(client().tenants.list(), PermissionDeniedError);
  // The admin works in any tenant by naming it.
  const d = await a.functions.deploy('hello', guest('hello'), { tenant: TENANT });
  assert.equal(d.version.tenant, TENANT);
  const audit = await client().tenants.audit({ limit: 5 });
  assert.ok(Array.isArray(audit) && audit.length > 0, 'the tenant has audit records');
});
