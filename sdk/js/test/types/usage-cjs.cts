// Type-checked (never run): the CommonJS typings, as `require('helixflow')` sees them.
import HelixFlow = require('helixflow');

const client = new HelixFlow.Client({ apiKey: 'your-key' });
export async function main(): Promise<string | null> {
  const r = await client.chat.completions.create({ model: 'smollm2-135m-instruct', messages: [{ role: 'user', content: 'Hello!' }] });
  const err: typeof HelixFlow.APIError = HelixFlow.NotFoundError;
  void err;
  return r.choices[0]?.message.content ?? null;
}
