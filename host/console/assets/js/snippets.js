// Equivalent curl / Python / JavaScript snippets for the playground panels.
// Snippets name the credential as an environment variable ($HELIXFLOW_API_KEY,
// os.environ["HELIXFLOW_API_KEY"], process.env.HELIXFLOW_API_KEY), never the real one.

import { h, replace, tabs, codeBlock } from './dom.js';

const KEY_SH = '$HELIXFLOW_API_KEY';
const KEY_PY = 'os.environ["HELIXFLOW_API_KEY"]';
const KEY_JS = 'process.env.HELIXFLOW_API_KEY';

/** A word for a POSIX shell, in single quotes where needed. */
export function shq(s) {
  const str = String(s);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(str) ? str : `'${str.replace(/'/g, `'\\''`)}'`;
}

/** A string literal for Python and JavaScript (JSON's escaping is valid in both). */
const lit = (s) => JSON.stringify(String(s));

/** A JSON value as a Python literal (True/False/None), indented like json.dumps(indent=4). */
export function py(v, indent = 0) {
  const pad = ' '.repeat(indent + 4);
  const end = ' '.repeat(indent);
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'None';
  if (typeof v === 'string') return lit(v);
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    if (v.every((x) => x === null || typeof x !== 'object')) {
      const flat = `[${v.map((x) => py(x)).join(', ')}]`;
      if (flat.length + indent < 80) return flat;
    }
    return `[\n${v.map((x) => pad + py(x, indent + 4)).join(',\n')},\n${end}]`;
  }
  const entries = Object.entries(v);
  if (!entries.length) return '{}';
  if (entries.every(([, x]) => x === null || typeof x !== 'object')) {
    const flat = `{${entries.map(([k, x]) => `${lit(k)}: ${py(x)}`).join(', ')}}`;
    if (flat.length + indent < 60) return flat;
  }
  return `{\n${entries.map(([k, x]) => `${pad}${lit(k)}: ${py(x, indent + 4)}`).join(',\n')},\n${end}}`;
}

/** A JSON value as a JavaScript literal (JSON, with unquoted keys where they are identifiers). */
export function js(v, indent = 0) {
  const pad = ' '.repeat(indent + 2);
  const end = ' '.repeat(indent);
  if (v === null || v === undefined) return 'null';
  if (typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    if (v.every((x) => x === null || typeof x !== 'object')) {
      const flat = `[${v.map((x) => js(x)).join(', ')}]`;
      if (flat.length + indent < 80) return flat;
    }
    return `[\n${v.map((x) => pad + js(x, indent + 2)).join(',\n')},\n${end}]`;
  }
  const entries = Object.entries(v);
  if (!entries.length) return '{}';
  const key = (k) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : JSON.stringify(k));
  if (entries.every(([, x]) => x === null || typeof x !== 'object')) {
    const flat = `{ ${entries.map(([k, x]) => `${key(k)}: ${js(x)}`).join(', ')} }`;
    if (flat.length + indent < 60) return flat;
  }
  return `{\n${entries.map(([k, x]) => `${pad}${key(k)}: ${js(x, indent + 2)}`).join(',\n')},\n${end}}`;
}

/** Indents every line after the first by `n` spaces (for nesting a literal in a call). */
const nest = (text, n) => text.split('\n').join(`\n${' '.repeat(n)}`);

/**
 * POST /v1/chat/completions, streamed. `body` is the request body the console sends;
 * `org` is the tenant to name as the OpenAI organization (platform admin keys only).
 */
export function chatSnippets({ origin, body, org }) {
  const curl = [
    `curl -N ${shq(`${origin}/v1/chat/completions`)} \\`,
    `  -H "Authorization: Bearer ${KEY_SH}" \\`,
    org ? `  -H ${shq(`OpenAI-Organization: ${org}`)} \\` : null,
    '  -H "Content-Type: application/json" \\',
    `  -d ${shq(JSON.stringify(body))}`,
  ].filter((l) => l !== null).join('\n');

  const { model, messages, stream, ...params } = body;
  const pyArgs = [`model=${lit(model)}`, `messages=${nest(py(messages), 4)}`]
    .concat(Object.entries(params).map(([k, v]) => `${k}=${nest(py(v), 4)}`))
    .concat(['stream=True']);
  const python = [
    'import os',
    '',
    'from openai import OpenAI',
    '',
    'client = OpenAI(',
    `    base_url=${lit(`${origin}/v1`)},`,
    `    api_key=${KEY_PY},`,
    org ? `    organization=${lit(org)},` : null,
    ')',
    'stream = client.chat.completions.create(',
    ...pyArgs.map((a) => `    ${a},`),
    ')',
    'for chunk in stream:',
    '    if chunk.choices and chunk.choices[0].delta.content:',
    '        print(chunk.choices[0].delta.content, end="", flush=True)',
    '    if chunk.usage:',
    '        print("\\n", chunk.usage)',
  ].filter((l) => l !== null).join('\n');

  const javascript = [
    "import OpenAI from 'openai';",
    '',
    'const client = new OpenAI({',
    `  baseURL: ${lit(`${origin}/v1`)},`,
    `  apiKey: ${KEY_JS},`,
    org ? `  organization: ${lit(org)},` : null,
    '});',
    `const stream = await client.chat.completions.create(${nest(js({ model, messages, ...params, stream: true }), 0)});`,
    'for await (const chunk of stream) {',
    "  process.stdout.write(chunk.choices[0]?.delta?.content ?? '');",
    '  if (chunk.usage) console.log(\'\\n\', chunk.usage);',
    '}',
  ].filter((l) => l !== null).join('\n');
  return { curl, python, javascript };
}

/** POST /v1/embeddings. */
export function embeddingsSnippets({ origin, model, input, org }) {
  const body = { model, input };
  const curl = [
    `curl ${shq(`${origin}/v1/embeddings`)} \\`,
    `  -H "Authorization: Bearer ${KEY_SH}" \\`,
    org ? `  -H ${shq(`OpenAI-Organization: ${org}`)} \\` : null,
    '  -H "Content-Type: application/json" \\',
    `  -d ${shq(JSON.stringify(body))}`,
  ].filter((l) => l !== null).join('\n');
  const python = [
    'import os',
    '',
    'from openai import OpenAI',
    '',
    'client = OpenAI(',
    `    base_url=${lit(`${origin}/v1`)},`,
    `    api_key=${KEY_PY},`,
    org ? `    organization=${lit(org)},` : null,
    ')',
    'resp = client.embeddings.create(',
    `    model=${lit(model)},`,
    `    input=${nest(py(input), 4)},`,
    ')',
    'vectors = [d.embedding for d in resp.data]',
    'print(len(vectors), "x", len(vectors[0]), "dimensions;", resp.usage.prompt_tokens, "tokens")',
  ].filter((l) => l !== null).join('\n');
  const javascript = [
    "import OpenAI from 'openai';",
    '',
    'const client = new OpenAI({',
    `  baseURL: ${lit(`${origin}/v1`)},`,
    `  apiKey: ${KEY_JS},`,
    org ? `  organization: ${lit(org)},` : null,
    '});',
    `const resp = await client.embeddings.create(${js(body)});`,
    'const vectors = resp.data.map((d) => d.embedding);',
    "console.log(vectors.length, 'x', vectors[0].length, 'dimensions;', resp.usage.prompt_tokens, 'tokens');",
  ].filter((l) => l !== null).join('\n');
  return { curl, python, javascript };
}

/**
 * Any HTTP request to the node: `url` (absolute), `method`, `headers` ({name: value},
 * without the credential), and either `body` (text) or `file` (a file name to send as
 * the raw body, e.g. an image).
 */
export function httpSnippets({ origin, method, path, headers = {}, body, file }) {
  // As the browser sends it (percent-encoded; curl would send `<`, spaces... raw).
  const url = new URL(path, origin).href;
  const hasBody = !!file || (body !== undefined && body !== null && body !== '' && method !== 'GET' && method !== 'HEAD');
  const hdrs = Object.entries(headers);

  const curl = [
    `curl${{ GET: '', HEAD: ' -I' }[method] ?? (method === 'POST' && hasBody ? '' : ` -X ${method}`)} ${shq(url)}`,
    `  -H "Authorization: Bearer ${KEY_SH}"`,
    ...hdrs.map(([k, v]) => `  -H ${shq(`${k}: ${v}`)}`),
    file ? `  --data-binary ${shq(`@${file}`)}` : hasBody ? `  --data-binary ${shq(body)}` : null,
  ].filter((l) => l !== null).join(' \\\n');

  const pyHeaders = { Authorization: '__KEY__', ...headers };
  const python = [
    'import os',
    '',
    'import requests',
    '',
    'resp = requests.request(',
    `    ${lit(method)},`,
    `    ${lit(url)},`,
    `    headers=${nest(py(pyHeaders), 4).replace('"__KEY__"', `"Bearer " + ${KEY_PY}`)},`,
    file ? `    data=open(${lit(file)}, "rb"),` : hasBody ? `    data=${lit(body)}.encode(),` : null,
    ')',
    'print(resp.status_code, resp.headers.get("x-helixflow-request-id"))',
    'print(resp.text)',
  ].filter((l) => l !== null).join('\n');

  const jsHeaders = js({ authorization: '__KEY__', ...headers }, 2)
    .replace('"__KEY__"', `\`Bearer \${${KEY_JS}}\``);
  const javascript = [
    file ? "import { readFile } from 'node:fs/promises';\n" : null,
    `const resp = await fetch(${lit(url)}, {`,
    `  method: ${lit(method)},`,
    `  headers: ${jsHeaders},`,
    file ? `  body: await readFile(${lit(file)}),` : hasBody ? `  body: ${lit(body)},` : null,
    '});',
    "console.log(resp.status, resp.headers.get('x-helixflow-request-id'));",
    'console.log(await resp.text());',
  ].filter((l) => l !== null).join('\n');
  return { curl, python, javascript };
}

const LANGS = [
  { label: 'curl', key: 'curl', lang: 'shell' },
  { label: 'Python', key: 'python', lang: 'python' },
  { label: 'JavaScript', key: 'javascript', lang: 'javascript' },
];

/**
 * A card of snippet tabs that can be refreshed as a form changes, keeping the tab the
 * user picked. `update({curl, python, javascript})`.
 */
export function snippetPanel(name) {
  const host = h('div', { class: 'snippets', 'data-snippets': name });
  let current = LANGS[0].label;
  return {
    el: host,
    update(s) {
      const want = current;
      const t = tabs(LANGS.map((l) => ({
        label: l.label,
        render: () => { current = l.label; return codeBlock(s[l.key], { lang: l.lang }); },
      })), { name: `${name}-snippets` });
      replace(host, t);
      if (want !== current) {
        const tab = [...t.querySelectorAll('[data-tab]')].find((b) => b.dataset.tab === want);
        if (tab) tab.click();
      }
    },
  };
}
