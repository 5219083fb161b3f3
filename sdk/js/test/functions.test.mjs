// Functions against a real node: deploy (from a path and from bytes, with progress),
// list, get, config, aliases, invoke (sync and as an Event), logs, delete.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { FunctionError, NotFoundError } from 'helixflow';
import { client, eventually, guest, uniq } from './helpers.mjs';

const ECHO = uniq('js-echo');
const VERSIONS = uniq('js-versions');
const ASYNC = uniq('js-async');

test('deploy from a path with upload progress, then invoke synchronously', async () => {
  const c = client();
  const progress = [];
  const d = await c.functions.deploy(ECHO, guest('echo-event'), {
    alias: 'live',
    description: 'from the JS SDK',
    config: { memory_mb: 64, timeout_ms: 5000 },
    onProgress: (sent, total) => progress.push([sent, total]),
  });
  const size = readFileSync(guest('echo-event')).byteLength;
  assert.equal(d.version.function, ECHO);
  assert.equal(d.version.size, size);
  assert.equal(d.version.description, 'from the JS SDK');
  assert.deepEqual(d.version.exports, { http: false, event: true });
  assert.equal(d.alias.name, 'live');
  assert.equal(d.alias.version, d.version.version);
  assert.ok(progress.length >= 1, 'progress was reported');
  assert.deepEqual(progress.at(-1), [size, size], 'progress ends at the full size');
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i][0] > progress[i - 1][0], 'progress grows');

  const out = await c.functions.invoke(ECHO, { hello: 'sdk' });
  assert.equal(out.echo, '{"hello":"sdk"}');
  assert.equal(out.function, ECHO);
  assert.equal(out.version, d.version.version);
  assert.equal(out.memory_limit_mb, 64, 'the deploy config applies');

  // Bytes go as they are; a handled error is a FunctionError with the function's type.
  const err = await c.functions.invoke(ECHO, new TextEncoder().encode('fail')).catch((e) => e);
  assert.ok(err instanceof FunctionError, `${err}`);
  assert.equal(err.status, 422);
  assert.equal(err.code, 'function_error');
  assert.equal(err.errorType, 'RequestedFailure');
  assert.match(err.message, /asked to fail/);

  const logs = await c.functions.logs(ECHO, { limit: 10 });
  assert.ok(logs.some((l) => l.trigger === 'event' && l.outcome === 'ok'), JSON.stringify(logs));
});

test('deploy from bytes, versions, aliases, config, list, get, delete', async () => {
  const c = client();
  const bytes = new Uint8Array(readFileSync(guest('echo-event')));
  const progress = [];
  const v1 = await c.functions.deploy(VERSIONS, bytes, { onProgress: (s, t) => progress.push([s, t]) });
  assert.ok(progress.length > 1, 'a component over 64 KiB reports progress more than once');
  assert.deepEqual(progress.at(-1), [bytes.byteLength, bytes.byteLength]);
  const v2 = await c.functions.deploy(VERSIONS, bytes.buffer.slice(0), { description: 'second' });
  assert.equal(v2.version.version, v1.version.version + 1);
  assert.equal(v2.version.sha256, v1.version.sha256, 'content-addressed');

  const live = await c.aliases.set(VERSIONS, 'live', v1.version.version);
  assert.equal(live.version, v1.version.version);
  assert.equal((await c.aliases.set(VERSIONS, 'live', v2.version.version)).version, v2.version.version);
  assert.equal((await c.aliases.rollback(VERSIONS, 'live')).version, v1.version.version);
  assert.equal((await c.aliases.get(VERSIONS, 'live')).version, v1.version.version);
  assert.deepEqual((await c.aliases.list(VERSIONS)).map((a) => a.name), ['live']);
  assert.equal((await c.functions.invoke(VERSIONS, {})).version, v1.version.version, 'served at live');
  assert.equal((await c.functions.invoke(VERSIONS, {}, { qualifier: 2 })).version, 2, 'a version by number');

  await c.functions.setConfig(VERSIONS, { memory_mb: 32, env: { GREETING: 'hi' } });
  const cfg = await c.functions.getConfig(VERSIONS);
  assert.equal(cfg.memory_mb, 32);
  assert.equal(cfg.env.GREETING, 'hi');

  const all = await c.functions.list();
  assert.ok(all.some((f) => f.name === VERSIONS && f.latest_version === 2), JSON.stringify(all));
  const got = await c.functions.get(VERSIONS);
  assert.equal(got.function.name, VERSIONS);
  assert.deepEqual(got.versions.map((v) => v.version), [1, 2]);
  assert.equal((await c.functions.getVersion(VERSIONS, 2)).description, 'second');
  assert.equal((await c.functions.versions(VERSIONS)).length, 2);

  await c.aliases.delete(VERSIONS, 'live');
  assert.deepEqual(await c.aliases.list(VERSIONS), []);
  const del = await c.functions.delete(VERSIONS);
  assert.equal(del.deleted, true);
  assert.equal(del.versions, 2);
  await assert.rejects(c.functions.get(VERSIONS), NotFoundError);
});

test('an Event (asynchronous) invocation is accepted and runs', async () => {
  const c = client();
  await c.functions.deploy(ASYNC, guest('echo-event'));
  const payload = { queued: true };
  const ev = await c.functions.invokeAsync(ASYNC, payload);
  assert.match(ev.id, /^[0-9a-f-]{16,}$/, ev.id);
  assert.equal(ev.version, 1);
  const ran = await eventually('the event to run', async () => {
    const logs = await c.functions.logs(ASYNC);
    return logs.find((l) => l.trigger === 'event' && l.outcome === 'ok' && l.stderr.includes(`${JSON.stringify(payload).length} bytes`));
  });
  assert.ok(ran.request_id);
  // Once it succeeded it is neither pending nor failed.
  await eventually('the event to leave the queue', async () => {
    const err = await c.events.get(ev.id).catch((e) => e);
    return err instanceof NotFoundError;
  });
});
