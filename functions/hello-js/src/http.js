// hello-js: GET /{tenant}/hello-js/anything -> a greeting naming the path;
// POST echoes the body back; /fail throws (the SDK answers a JSON 500).
import { httpHandler, Response } from '@helixflow/guest';

export const incomingHandler = httpHandler((req) => {
  if (req.path === '/fail') throw new RangeError('asked to fail');
  if (req.method === 'POST') {
    return new Response(200, req.body, [['content-type', req.header('content-type') ?? 'application/octet-stream']]);
  }
  const name = req.searchParams.get('name') ?? 'world';
  return Response.text(200, `hello, ${name}, from JavaScript at ${req.path}\n`);
});
