// The shipped .d.ts (ESM and CommonJS) type-check a small program with tsc --noEmit,
// including lines that must NOT compile (@ts-expect-error).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

test('the type declarations check with tsc --noEmit', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const project = join(dirname(fileURLToPath(import.meta.url)), 'types', 'tsconfig.json');
  const r = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
