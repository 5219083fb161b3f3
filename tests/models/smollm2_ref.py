"""Reference generation for SmolLM2 ONNX models with Python onnxruntime (tests, benchmarks).

The same loop HelixFlow runs: ChatML template, byte-level BPE (`tokenizers`), one
prefill run with an empty past, then one run per token feeding `present.*` back as
`past_key_values.*`.
"""

import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
END_OF_TEXT, IM_START, IM_END = 0, 1, 2


def chat_text(messages):
    """SmolLM2's chat template (add_generation_prompt=True)."""
    out = ""
    if not messages or messages[0]["role"] != "system":
        out += f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    for m in messages:
        out += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


def chat_ids(tok, messages):
    return tok.encode(chat_text(messages), add_special_tokens=False).ids


class Generator:
    def __init__(self, model_path, tokenizer_path, threads=0):
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.kv_names = [i.name for i in self.sess.get_inputs() if i.name.startswith("past_key_values.")]
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def step(self, ids, past, past_len):
        n = len(ids)
        feed = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, past_len + n), np.int64),
            "position_ids": np.arange(past_len, past_len + n, dtype=np.int64)[None, :],
        }
        feed.update(past)
        outs = self.sess.run(self.out_names, feed)
        logits = outs[0][0, -1]
        present = {name.replace("present.", "past_key_values."): v for name, v in zip(self.out_names[1:], outs[1:])}
        return logits, present

    def empty_past(self):
        return {n: np.zeros((1, 3, 0, 64), np.float32) for n in self.kv_names}

    def greedy(self, prompt_ids, max_tokens, timings=None):
        """Greedy decoding until <|im_end|> or max_tokens: (token ids, text)."""
        t0 = time.perf_counter()
        logits, past = self.step(prompt_ids, self.empty_past(), 0)
        out = []
        length = len(prompt_ids)
        while len(out) < max_tokens:
            nxt = int(np.argmax(logits))
            if timings is not None and not out:
                timings["ttft"] = time.perf_counter() - t0
            if nxt in (IM_END, END_OF_TEXT):
                break
            out.append(nxt)
            if len(out) == max_tokens:
                break
            logits, past = self.step([nxt], past, length)
            length += 1
        if timings is not None:
            timings["total"] = time.perf_counter() - t0
        return out, self.tok.decode(out)
