// classify-js: `POST` a JPEG or PNG, get the ImageNet top-5 as JSON — the JavaScript
// twin of functions/classify-image.
//
// In the sandbox (JavaScript): decode, resize the shorter side to 256 (triangle filter),
// centre-crop 224x224, (x - 127) / 128, NCHW f32 (src/preprocess.js). On the host through
// wasi:nn: EfficientNet-Lite0 (`MODEL` env var, default `efficientnet-lite0`). Back in the
// sandbox: softmax, top-5 with labels (functions/classify-image/imagenet_labels.txt).
//
//   curl --data-binary @cat.jpg http://HOST/TENANT/classify-js/
//   {"model":"efficientnet-lite0","top5":[{"label":"tabby","index":281,"probability":0.41},...]}

import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { Graph, NnError, Response, Tensor, httpHandler } from '@helixflow/guest';
import LABELS from '../../classify-image/imagenet_labels.txt';
import { ImageError, SIZE, preprocess } from './preprocess.js';

const labels = LABELS.split('\n');

function modelName() {
  const found = getEnvironment().find(([k]) => k === 'MODEL');
  return found ? found[1] : 'efficientnet-lite0';
}

/** Softmax (in f64, after an f32 shift by the max, as the Rust function does) and top-5. */
export function top5(logits) {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const exps = Array.from(logits, (l) => Math.exp(Math.fround(l - max)));
  const sum = exps.reduce((a, b) => a + b, 0);
  const idx = exps.map((_, i) => i).sort((a, b) => exps[b] - exps[a]);
  return idx.slice(0, 5).map((i) => ({ label: labels[i] ?? '?', index: i, probability: exps[i] / sum }));
}

export const incomingHandler = httpHandler((req) => {
  if (req.method !== 'POST') return Response.error(405, 'method_not_allowed', 'POST a JPEG or PNG image');
  let input;
  try {
    input = preprocess(req.body);
  } catch (e) {
    if (e instanceof ImageError) return Response.error(400, 'invalid_image', e.message);
    throw e;
  }
  const model = modelName();
  let logits;
  try {
    const graph = Graph.loadByName(model);
    const out = graph.context().compute({ images: Tensor.fromFloat32([1, 3, SIZE, SIZE], input) });
    logits = out.get('logits').toFloat32();
  } catch (e) {
    if (e instanceof NnError) return Response.error(503, 'inference_failed', e.message);
    throw e;
  }
  if (logits.length !== 1000) {
    return Response.error(502, 'bad_model_output', `expected 1000 logits, got ${logits.length}`);
  }
  return Response.json(200, { model, top5: top5(logits) });
});
