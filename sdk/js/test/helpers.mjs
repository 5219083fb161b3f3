// Shared by the tests: the node under test comes from the environment that
// tests/e2e/sdk_js.rs sets (a missing variable fails the test, never skips it).
import { join } from 'node:path';
import { Client } from 'helixflow';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through tests/e2e/sdk_js.rs (scripts/test.sh)`);
  return v;
}

export const baseURL = () => env('HELIXFLOW_BASE_URL');
export const tenant = () => env('HELIXFLOW_TEST_TENANT');
export const guest = (name) => join(env('HELIXFLOW_GUEST_DIR'), `${name.replaceAll('-', '_')}.wasm`);
export const model = (file) => join(env('HELIXFLOW_MODELS_DIR'), file);
export const CHAT_MODEL = 'smollm2-135m-instruct';

/** A tenant admin's client (an hfk_ key of the test tenant). */
export function client(options = {}) {
  return new Client({ apiKey: env('HELIXFLOW_TEST_KEY'), baseURL: baseURL(), tenant: tenant(), ...options });
}

/** The platform admin's client. */
export function admin(options = {}) {
  return new Client({ apiKey: env('HELIXFLOW_TEST_ADMIN_KEY'), baseURL: baseURL(), ...options });
}

/** Polls `check` until it returns a truthy value (returned), or fails after `ms`. */
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A name unique to this run (`js-echo` -> `js-echo-k3x9q`), so reruns on one node don't collide. */
const RUN = Math.random().toString(36).replace(/[^a-z]/g, '').slice(0, 5).padEnd(5, 'x');
export const uniq = (name) => `${name}-${RUN}`;
