// hello-js (event): {"name": "Ada"} -> {"greeting": "hello, Ada", "requestId", "function"};
// {"fail": "message"} -> a function error of type ValidationError.
import { jsonEventHandler, FunctionError } from '@helixflow/guest';

export const eventHandler = jsonEventHandler((event, ctx) => {
  if (event?.fail !== undefined) throw new FunctionError('ValidationError', String(event.fail));
  if (event?.throw !== undefined) throw new TypeError(String(event.throw));
  return {
    greeting: `hello, ${event?.name ?? 'world'}`,
    requestId: ctx.requestId,
    function: `${ctx.tenant}/${ctx.functionName}@${ctx.functionVersion}`,
  };
});
