// Autoregressive generation with the KV cache kept in the host
// (`helixflow:llm/sequence@0.1.0`, see wit/llm/llm.wit).
//
//   const seq = Sequence.open('smollm2-135m-instruct');
//   let logits = seq.feed(promptIds); // Float32Array of vocabSize
//   for (;;) {
//     const next = argmax(logits);
//     if (next === EOS) break;
//     logits = seq.feed([next]);
//   }

import { Sequence as WitSequence } from 'helixflow:llm/sequence@0.1.0';
import { NnError } from './core.js';

function call(f) {
  try {
    return f();
  } catch (e) {
    const err = e?.payload;
    if (err && typeof err.code === 'string') throw new NnError(err.code, err.message);
    throw e;
  }
}

/** A token sequence whose KV cache lives in the host. */
export class Sequence {
  constructor(seq) {
    this.seq = seq;
  }
  /** Opens an empty sequence on a registry model (this tenant's or a public one). */
  static open(model) {
    return new Sequence(call(() => WitSequence.open(model)));
  }
  /** The model's context window in tokens. */
  get contextLength() {
    return this.seq.contextLength();
  }
  /** Logits per step. */
  get vocabSize() {
    return this.seq.vocabSize();
  }
  /** Tokens cached so far. */
  get length() {
    return this.seq.len();
  }
  /** Appends `tokens` (u32 ids), runs the model over them, returns the next-token logits. */
  feed(tokens) {
    const ids = tokens instanceof Uint32Array ? tokens : Uint32Array.from(tokens);
    return call(() => this.seq.feed(ids));
  }
}
