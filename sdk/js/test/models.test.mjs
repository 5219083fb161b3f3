// Models and the OpenAI-compatible routes through the client: push (with progress),
// list, get, config, delete; embeddings; chat completions, streamed and not.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { NotFoundError, OpenAI } from 'helixflow';
import { CHAT_MODEL, client, guest, model, uniq } from './helpers.mjs';

const MINILM = uniq('js-minilm');

test('push a model with progress; list, get, config, delete; embeddings through it', async () => {
  const c = client();
  await c.functions.deploy('embed-minilm', guest('embed-minilm'));
  const file = model('minilm-int8.onnx');
  const size = statSync(file).size;
  const progress = [];
  const pushed = await c.models.push(MINILM, file, {
    config: { serve: { kind: 'embeddings', function: 'embed-minilm' } },
    description: 'MiniLM int8',
    onProgress: (sent, total) => progress.push([sent, total]),
    timeout: 300_000,
  });
  assert.equal(pushed.version.model, MINILM);
  assert.equal(pushed.version.version, 1);
  assert.ok(progress.length > 10, `a ${size}-byte upload reports progress as it goes (${progress.length})`);
  assert.deepEqual(progress.at(-1), [size, size]);

  const models = await c.models.list();
  assert.ok(models.some((m) => m.name === MINILM), JSON.stringify(models));
  const got = await c.models.get(MINILM);
  assert.equal(got.model.name, MINILM);
  assert.equal(got.versions.length, 1);
  assert.equal((await c.models.getVersion(MINILM, 1)).version.version, 1);

  const emb = await c.embeddings.create({ model: MINILM, input: ['edge inference', 'in a sandbox'] });
  assert.equal(emb.data.length, 2);
  assert.equal(emb.data[0].embedding.length, 384);
  const norm = Math.hypot(...emb.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-3, `normalised (${norm})`);
  assert.ok(emb.usage.prompt_tokens > 0);

  const cfg = await c.models.config(MINILM, { serve: { kind: 'embeddings', function: 'embed-minilm' }, max_batch: 8 });
  assert.equal(cfg.model.config.max_batch, 8);

  // The openai package's own errors for the /v1 routes.
  const err = await c.embeddings.create({ model: 'no-such-model', input: 'x' }).catch((e) => e);
  assert.ok(err instanceof OpenAI.NotFoundError, `${err}`);
  assert.equal(err.status, 404);

  const del = await c.models.delete(MINILM);
  assert.equal(del.deleted_versions, 1);
  await assert.rejects(c.models.get(MINILM), NotFoundError);
});

test('chat completion, streamed token by token and whole', async () => {
  const c = client();
  const messages = [{ role: 'user', content: 'What is the capital of France?' }];
  const stream = await c.chat.completions.create({ model: CHAT_MODEL, messages, stream: true, temperature: 0, max_tokens: 12 });
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) {
      text += chunk.choices[0].delta.content;
      chunks++;
    }
  }
  assert.ok(chunks > 1, `streamed in ${chunks} chunks`);
  assert.match(text, /Paris/, text);

  const whole = await c.chat.completions.create({ model: CHAT_MODEL, messages, temperature: 0, max_tokens: 12 });
  assert.equal(whole.choices[0].message.content, text, 'greedy: the same answer');
  assert.ok(whole.usage.completion_tokens >= chunks, JSON.stringify(whole.usage));
});
