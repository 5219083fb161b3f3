// Every ```javascript block of README.md's JavaScript section (and of sdk/js/README.md) runs
// against the node as a user would run it: `require('helixflow')` from a project that installed the
// package, 'your-key' replaced by a real key, the base URL from HELIXFLOW_BASE_URL, and
// the working directory laid out like a checkout (target/wasm32-wasip2/guest/*.wasm).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { env } from './helpers.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const readme = join(pkg, '..', '..', 'README.md');

/** The ```javascript blocks of `text`, or of its section under `heading`. */
function blocks(text, heading) {
  let section = text;
  if (heading) {
    const start = text.indexOf(heading);
    assert.ok(start >= 0, `README.md has the section ${heading}`);
    const rest = text.slice(text.indexOf('\n', start) + 1);
    const end = rest.search(/^#{1,4} /m);
    section = end < 0 ? rest : rest.slice(0, end);
  }
  return [...section.matchAll(/```javascript\n([\s\S]*?)```/g)].map((m) => m[1]);
}

test("README's JavaScript snippet starts with the issue's three lines", () => {
  const [first] = blocks(readFileSync(readme, 'utf8'), '#### JavaScript / TypeScript (`sdk/js`)');
  assert.ok(first, 'a ```javascript block');
  assert.ok(
    first.startsWith(
      "const HelixFlow = require('helixflow');\n" +
        "const client = new HelixFlow.Client({ apiKey: 'your-key' });\n" +
        "const response = await client.chat.completions.create({ model: 'smollm2-135m-instruct', messages: [{ role: 'user', content: 'Hello!' }] });\n",
    ),
    first,
  );
});

/** Runs `code` as a CommonJS program from a project that installed the package. */
function run(code, label) {
  const dir = mkdtempSync(join(tmpdir(), 'helixflow-readme-'));
  try {
    // A project that installed the package, and a checkout's built guests.
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(pkg, join(dir, 'node_modules', 'helixflow'), 'dir');
    mkdirSync(join(dir, 'target', 'wasm32-wasip2'), { recursive: true });
    symlinkSync(env('HELIXFLOW_GUEST_DIR'), join(dir, 'target', 'wasm32-wasip2', 'guest'), 'dir');
    assert.ok(code.includes("'your-key'"), `${label} uses 'your-key'`);
    const body = code.replaceAll("'your-key'", JSON.stringify(env('HELIXFLOW_TEST_KEY')));
    const file = join(dir, 'readme.cjs');
    // CommonJS has no top-level await: the snippet runs in an async function.
    writeFileSync(file, `(async () => {\n${body}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
    const r = spawnSync(process.execPath, [file], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, HELIXFLOW_API_KEY: '', HELIXFLOW_TENANT: '' },
    });
    console.log(`${label}:\n${r.stdout}`);
    assert.equal(r.status, 0, `${label} failed:\n${r.stdout}\n${r.stderr}`);
    assert.ok(r.stdout.trim().length > 0, `${label} printed its results`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("README.md's JavaScript snippets run against the node", () => {
  const code = blocks(readFileSync(readme, 'utf8'), '#### JavaScript / TypeScript (`sdk/js`)');
  assert.ok(code.length > 0);
  code.forEach((snippet, i) => run(snippet, `README.md block ${i}`));
});

test("sdk/js/README.md's JavaScript blocks run against the node, as one program", () => {
  const code = blocks(readFileSync(join(pkg, 'README.md'), 'utf8'));
  assert.ok(code.length >= 2, 'sdk/js/README.md has JavaScript examples');
  run(code.join('\n'), 'sdk/js/README.md');
});
