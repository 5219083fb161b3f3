// Type-checked (never run) by test/types.test.mjs: the published .d.ts describe the API.
import { Client, NotFoundError, RateLimitError, type FunctionInfo, type UsageResult } from 'helixflow';
import HelixFlowDefault from 'helixflow';

const client = new Client({ apiKey: 'k', baseURL: 'http://127.0.0.1:8080', tenant: 't', timeout: 1000, maxRetries: 1 });
const same: Client = new HelixFlowDefault({ apiKey: 'k' });

export async function main(): Promise<void> {
  const fns: FunctionInfo[] = await client.functions.list();
  const first: string | undefined = fns[0]?.name;
  const d = await client.functions.deploy('f', new Uint8Array(0), { alias: 'live', onProgress: (sent: number, total: number) => {} });
  const v: number = d.version.version;
  const out: unknown = await client.functions.invoke('f', { x: 1 }, { qualifier: 'live' });
  const ev: string = (await client.functions.invokeAsync('f', { x: 1 })).id;
  const key: string = (await client.keys.create({ name: 'k', role: 'viewer' })).key;
  const usage: UsageResult = await client.usage.query({ groupBy: ['function'], from: new Date() });
  const chat = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  const text: string | null = chat.choices[0]!.message.content;
  const stream = await client.chat.completions.create({ model: 'm', messages: [], stream: true });
  for await (const chunk of stream) {
    const delta: string | null | undefined = chunk.choices[0]?.delta.content;
  }
  const emb: number[] = (await client.embeddings.create({ model: 'e', input: 'x' })).data[0]!.embedding;
  try {
    await client.functions.get('f');
  } catch (e) {
    if (e instanceof NotFoundError) {
      const s: number = e.status;
      const c: string = e.code;
      const id: string | undefined = e.requestId;
    }
    if (e instanceof RateLimitError) {
      const after: number | undefined = e.retryAfter;
    }
  }
  // @ts-expect-error: deploy needs a source
  await client.functions.deploy('f');
  // @ts-expect-error: not a role
  await client.keys.create({ name: 'k', role: 'root' });
  // @ts-expect-error: no such option
  new Client({ apiKey: 'k', retries: 3 });
  void [first, v, out, ev, key, usage, text, emb, same];
}
