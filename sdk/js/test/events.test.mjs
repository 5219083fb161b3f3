// A failing Event invocation: tried 1 + max_retries times, listed as failed, replayed
// once as a new event (a second replay is a ConflictError).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConflictError, NotFoundError } from 'helixflow';
import { client, eventually, guest, uniq } from './helpers.mjs';

const FLAKY = uniq('js-flaky');

test('a failed event is listed and can be replayed once', async () => {
  const c = client();
  // `chaos` answers the JSON string "error" with a handled error (ChaosError).
  await c.functions.deploy(FLAKY, guest('chaos'), {
    config: { async_invoke: { max_retries: 0 } },
  });
  const ev = await c.functions.invokeAsync(FLAKY, 'error');
  const failed = await eventually('the event to fail', async () => {
    const e = await c.events.get(ev.id).catch(() => null);
    return e?.status === 'failed' ? e : null;
  });
  assert.equal(failed.id, ev.id);
  assert.equal(failed.function, FLAKY);
  assert.equal(failed.attempts, 1, 'max_retries 0: one attempt');
  assert.equal(failed.condition, 'RetriesExhausted');
  assert.equal(failed.last_error.error_type, 'ChaosError');
  assert.equal(Buffer.from(failed.payload_b64, 'base64').toString(), '"error"');

  const list = await c.events.list({ status: 'failed', function: FLAKY });
  assert.deepEqual(list.map((e) => e.id), [ev.id]);
  assert.ok((await c.events.list({ status: 'pending' })).every((e) => e.id !== ev.id));

  const again = await c.events.replay(ev.id);
  assert.equal(again.replay_of, ev.id);
  assert.notEqual(again.id, ev.id);
  const err = await c.events.replay(ev.id).catch((e) => e);
  assert.ok(err instanceof ConflictError, `${err}`);
  assert.equal(err.status, 409);
  assert.equal(err.code, 'already_replayed');

  const replayed = await eventually('the replay to fail too', async () => {
    const e = await c.events.get(again.id).catch(() => null);
    return e?.status === 'failed' ? e : null;
  });
  assert.equal(replayed.source, `replay:${ev.id}`);
  assert.equal((await c.events.get(ev.id)).replayed_as, again.id);

  await assert.rejects(c.events.get('no-such-event'), NotFoundError);
});
