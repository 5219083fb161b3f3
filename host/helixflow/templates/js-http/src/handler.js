// The function's logic: a plain function from a Request to a Response. It imports only
// '@helixflow/guest/core', so `node --test` runs it outside the component.
import { Response } from '@helixflow/guest/core';

/** GET /{tenant}/{{name}}/anything?name=Ada -> a greeting; POST -> the JSON body echoed. */
export function handle(req) {
  if (req.method === 'POST') {
    let body;
    try {
      body = req.json();
    } catch (e) {
      return Response.error(400, 'invalid_json', `the body is not JSON: ${e.message}`);
    }
    return Response.json(200, { received: body });
  }
  const name = req.searchParams.get('name') ?? 'world';
  return Response.text(200, `hello, ${name}, from {{name}} at ${req.path}\n`);
}
