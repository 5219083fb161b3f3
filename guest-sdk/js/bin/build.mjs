#!/usr/bin/env node
// helixflow-js-build: bundle a HelixFlow JavaScript function and componentize it.
//
//   helixflow-js-build src/index.js --world http-function|event-function -o dist/NAME.wasm
//
// 1. Rolldown bundles the entry module and its npm dependencies (CommonJS included) into
//    one ES module; the WIT imports (`wasi:*`, `helixflow:*`) stay imports.
// 2. componentize-js embeds that module in StarlingMonkey (SpiderMonkey built for WASI
//    0.2), pre-initialised with Wizer, targeting one of this SDK's WIT worlds (wit/, which
//    is the repository's wit/guest).
//
// Both tools come from the project's node_modules (devDependencies
// `@bytecodealliance/componentize-js` and `rolldown`), else from the directory of the jco
// install that `HELIXFLOW_JCO` names (the test set-up's).
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const WORLDS = ['http-function', 'event-function'];

function fail(msg) {
  console.error(`helixflow-js-build: ${msg}`);
  process.exit(2);
}

function parse(argv) {
  const opts = { entry: undefined, world: undefined, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--world' || a === '-w') opts.world = argv[++i];
    else if (a === '-o' || a === '--out') opts.out = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('usage: helixflow-js-build ENTRY.js --world http-function|event-function -o OUT.wasm');
      process.exit(0);
    } else if (a.startsWith('-')) fail(`unknown option ${a}`);
    else if (opts.entry === undefined) opts.entry = a;
    else fail(`unexpected argument ${a}`);
  }
  if (!opts.entry) fail('no entry module: helixflow-js-build src/index.js --world http-function -o dist/NAME.wasm');
  if (!WORLDS.includes(opts.world)) fail(`--world must be one of ${WORLDS.join(', ')} (got ${opts.world})`);
  if (!opts.out) fail('no output: pass -o dist/NAME.wasm');
  if (!existsSync(opts.entry)) fail(`${opts.entry}: no such file`);
  return opts;
}

/** Where to look for the build tools: the project, then HELIXFLOW_JCO's install. */
function searchRoots() {
  const roots = [process.cwd()];
  const jco = process.env.HELIXFLOW_JCO;
  if (jco) {
    if (!existsSync(jco)) fail(`HELIXFLOW_JCO=${jco}: no such file`);
    // <install>/node_modules/.bin/jco -> <install>
    roots.push(dirname(dirname(dirname(realpathSync(jco)))));
    roots.push(dirname(dirname(jco)));
  }
  return roots;
}

/** The directory of an installed package, found from the search roots. */
function packageDir(pkg, roots = searchRoots()) {
  for (const root of roots) {
    for (let dir = root; ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', pkg);
      if (existsSync(join(candidate, 'package.json'))) return candidate;
      if (dirname(dir) === dir) break;
    }
    if (existsSync(join(root, pkg, 'package.json'))) return join(root, pkg);
  }
  return undefined;
}

/**
 * componentize-js runs its splicer (a component) through @bytecodealliance/preview2-shim;
 * shims from 0.26 on preopen nothing by default, so the splicer could not read the WIT.
 * Preopen the filesystem root in the shim instance componentize-js uses.
 */
async function preopenForSplicer(componentizeDir) {
  const shim = packageDir('@bytecodealliance/preview2-shim', [dirname(dirname(componentizeDir)), componentizeDir]);
  if (!shim) return;
  const entry = join(shim, 'dist', 'nodejs', 'filesystem.js');
  if (!existsSync(entry)) return;
  const fs = await import(pathToFileURL(entry).href);
  if (typeof fs._setPreopens === 'function') fs._setPreopens({ '/': '/' });
}

async function load(pkg) {
  for (const root of searchRoots()) {
    try {
      const path = createRequire(join(root, 'package.json')).resolve(pkg);
      return await import(pathToFileURL(path).href);
    } catch {
      /* try the next root */
    }
  }
  // createRequire cannot resolve import-only packages: look for the ESM entry directly.
  for (const root of searchRoots()) {
    for (const base of [join(root, 'node_modules', pkg), join(root, pkg)]) {
      const manifest = join(base, 'package.json');
      if (!existsSync(manifest)) continue;
      const { createRequire: _c } = await import('node:module');
      const meta = JSON.parse(await (await import('node:fs/promises')).readFile(manifest, 'utf8'));
      const exp = meta.exports?.['.'] ?? meta.exports;
      const entry = (typeof exp === 'string' ? exp : exp?.import?.default ?? exp?.import ?? exp?.default) ?? meta.module ?? meta.main;
      if (typeof entry === 'string') return await import(pathToFileURL(join(base, entry)).href);
      void _c;
    }
  }
  fail(
    `${pkg} is not installed: run \`npm install\` in the project (it lists @bytecodealliance/componentize-js and rolldown as devDependencies), or set HELIXFLOW_JCO to the jco of an install that has them`,
  );
}

const opts = parse(process.argv.slice(2));
const wit = realpathSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'wit'));
const [{ rolldown }, { componentize }] = await Promise.all([load('rolldown'), load('@bytecodealliance/componentize-js')]);

const cache = resolve('node_modules', '.cache', 'helixflow-build');
mkdirSync(cache, { recursive: true });
const bundlePath = join(cache, 'bundle.js');
try {
  const bundle = await rolldown({
    input: resolve(opts.entry),
    external: [/^wasi:/, /^helixflow:/],
    platform: 'neutral',
    // Text files (e.g. a label list) import as strings.
    moduleTypes: { '.txt': 'text' },
    logLevel: 'warn',
  });
  await bundle.write({ file: bundlePath, format: 'esm', codeSplitting: false });
  await bundle.close();
} catch (e) {
  fail(`bundling ${opts.entry} failed: ${e.message ?? e}`);
}

let component;
await preopenForSplicer(packageDir('@bytecodealliance/componentize-js'));
try {
  ({ component } = await componentize({ sourcePath: bundlePath, witPath: wit, worldName: opts.world }));
} catch (e) {
  fail(`componentize-js failed: ${e.message ?? e}`);
}
mkdirSync(dirname(resolve(opts.out)), { recursive: true });
writeFileSync(opts.out, component);
console.log(`${opts.out}: ${component.byteLength} bytes (${opts.world})`);
