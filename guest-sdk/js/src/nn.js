// Typed helpers over `wasi:nn@0.2.0-rc-2024-10-28`: the host runs the model on ONNX
// Runtime; the guest names a registry model and moves tensors.
//
//   const graph = Graph.loadByName('all-minilm-l6-v2');
//   const out = graph.context().compute({
//     input_ids: Tensor.fromInt64([1, 4], [101, 7592, 2088, 102]),
//     attention_mask: Tensor.fromInt64([1, 4], [1, 1, 1, 1]),
//   });
//   const hidden = out.get('last_hidden_state').toFloat32(); // a Float32Array view

import { load, loadByName } from 'wasi:nn/graph@0.2.0-rc-2024-10-28';
import { Tensor as WitTensor } from 'wasi:nn/tensor@0.2.0-rc-2024-10-28';
import { NnError, Outputs, Tensor } from './core.js';

/** Runs `f`, turning a wasi:nn error (a thrown `errors.error` resource) into an NnError. */
function call(f) {
  try {
    return f();
  } catch (e) {
    const err = e?.payload;
    if (err && typeof err.code === 'function') {
      throw new NnError(err.code(), err.data());
    }
    throw e;
  }
}

/** A loaded model. */
export class Graph {
  constructor(graph) {
    this.graph = graph;
  }
  /** A model from the registry: the caller's tenant's, else a public one (`name@3` pins a version). */
  static loadByName(name) {
    return new Graph(call(() => loadByName(name)));
  }
  /** Model bytes shipped by the guest (only where the host's policy allows it). */
  static loadOnnx(bytes) {
    return new Graph(call(() => load([bytes], 'onnx', 'cpu')));
  }
  /** An execution context (cheap; one per request is fine). */
  context() {
    return new Context(call(() => this.graph.initExecutionContext()));
  }
}

/** An execution context of a Graph. */
export class Context {
  constructor(ctx) {
    this.ctx = ctx;
  }
  /**
   * Runs the model on named inputs: an object `{name: Tensor}` or `[[name, Tensor], ...]`.
   * @returns {Outputs}
   */
  compute(inputs) {
    const entries = Array.isArray(inputs) ? inputs : Object.entries(inputs);
    const named = entries.map(([name, t]) => {
      if (!(t instanceof Tensor)) throw new NnError('invalid-argument', `input ${name} is not a Tensor`);
      return [name, new WitTensor(Uint32Array.from(t.dims), t.type, t.data)];
    });
    const out = call(() => this.ctx.compute(named));
    return new Outputs(out.map(([name, t]) => [name, new Tensor(t.ty(), t.dimensions(), t.data())]));
  }
}
