//! Dynamic batching: concurrent `compute` calls on one session (from any instance,
//! any tenant) are coalesced along dimension 0, run once, and split back.
//!
//! Only models whose owner declared them row-independent ([`Batching::row_independent`]:
//! every output row is a function of the same input row alone) are batched; any other
//! model runs one request per run whatever its `max_batch`, because a cross-row
//! operation (dynamic activation quantisation with one scale per tensor, batch-wide
//! normalisation, ...) would make one caller's result depend on who else was in the
//! batch. A request joins a batch only with requests of the same signature (every
//! input's type and every dimension but the first). The first request of a batch waits
//! at most `max_delay_us` for company; a batch closes early at `max_batch` rows. Models
//! whose inputs and outputs do not all have a dynamic first dimension are never batched
//! (the config is ignored with a warning), and an output that does not come back with
//! the batch's row count makes the batch fall back to separate runs.
//!
//! What a caller gets from a batched run, precisely: for a row-independent model, its
//! rows of the batch's outputs, which equal the unbatched run's outputs up to
//! floating-point summation order. Bit-identity is not promised: ONNX Runtime may pick
//! other kernels or blocking (GEMM tiling, threading splits) for another batch size.
//! Measured on all-MiniLM-L6-v2 (int8 weights, fp32 compute) through `/v1/embeddings`
//! (tests/e2e/sec_nn.rs, which prints it and requires < 1e-5): max abs difference 0 on
//! a 2-core x86-64 CPU; the tiny matmul model of tests/e2e/nn.rs is bit-identical too.
//! Whether a model really is row-independent is its owner's declaration; the host cannot
//! check it, so a wrong declaration affects only the callers of that model.

use crate::ffi::RawOutput;
use crate::tensor::{Tensor, TensorType};
use crate::{Batching, ErrorCode, NnError, SessionCore};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<Vec<RawOutput>, NnError>>;

struct Item {
    inputs: Vec<Tensor>,
    rows: u32,
    reply: Reply,
}

pub(crate) struct Batcher {
    tx: mpsc::Sender<Item>,
    max_batch: u32,
}

impl Batcher {
    pub(crate) fn start(core: &Arc<SessionCore>, cfg: Batching) -> Option<Batcher> {
        if cfg.max_batch <= 1 {
            return None;
        }
        if !cfg.row_independent {
            tracing::info!(model = %core.display, "batching configured but the model is not declared row_independent; running unbatched");
            return None;
        }
        let dynamic = core
            .inputs
            .iter()
            .chain(&core.outputs)
            .all(|io| io.shape.first() == Some(&-1));
        if !dynamic || core.inputs.is_empty() {
            tracing::warn!(model = %core.display, "batching configured but the model has no dynamic batch dimension on every input and output; running unbatched");
            return None;
        }
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run_loop(core.clone(), cfg, rx));
        Some(Batcher {
            tx,
            max_batch: cfg.max_batch,
        })
    }

    /// Batchable: every input has the same first dimension, within `max_batch`.
    pub(crate) fn accepts(&self, inputs: &[Tensor]) -> bool {
        let Some(rows) = inputs.first().and_then(|t| t.dims.first()) else {
            return false;
        };
        *rows >= 1 && *rows <= self.max_batch && inputs.iter().all(|t| t.dims.first() == Some(rows))
    }

    pub(crate) async fn submit(&self, inputs: Vec<Tensor>) -> Result<Vec<RawOutput>, NnError> {
        let rows = inputs[0].dims[0];
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Item {
                inputs,
                rows,
                reply,
            })
            .await
            .map_err(|_| NnError::new(ErrorCode::RuntimeError, "batcher stopped"))?;
        rx.await
            .map_err(|_| NnError::new(ErrorCode::RuntimeError, "batch run was dropped"))?
    }
}

type Signature = Vec<(TensorType, Vec<u32>)>;

fn signature(inputs: &[Tensor]) -> Signature {
    inputs
        .iter()
        .map(|t| (t.ty, t.dims[1..].to_vec()))
        .collect()
}

/// Batches in flight per session at once. While they run, new requests queue up and
/// form the next, larger batch (a run already uses the whole intra-op thread pool).
fn max_in_flight() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() / 4).max(1))
        .unwrap_or(1)
}

async fn run_loop(core: Arc<SessionCore>, cfg: Batching, mut rx: mpsc::Receiver<Item>) {
    let delay = Duration::from_micros(cfg.max_delay_us);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight()));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut rows = first.rows;
        let mut pending = vec![first];
        let deadline = tokio::time::Instant::now() + delay;
        while rows < cfg.max_batch {
            // Whatever is already queued joins without waiting.
            match rx.try_recv() {
                Ok(it) => {
                    rows += it.rows;
                    pending.push(it);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if delay.is_zero() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(it)) => {
                    rows += it.rows;
                    pending.push(it);
                }
                _ => break,
            }
        }
        // Group by signature, then cut each group into runs of at most max_batch rows;
        // the runs of one collection share the slot (they run one after another).
        let mut groups: HashMap<Signature, Vec<Item>> = HashMap::new();
        for it in pending {
            groups.entry(signature(&it.inputs)).or_default().push(it);
        }
        let mut runs: Vec<Vec<Item>> = Vec::new();
        for (_, items) in groups {
            let mut run: Vec<Item> = Vec::new();
            let mut run_rows = 0;
            for it in items {
                if run_rows + it.rows > cfg.max_batch && !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                    run_rows = 0;
                }
                run_rows += it.rows;
                run.push(it);
            }
            if !run.is_empty() {
                runs.push(run);
            }
        }
        let core = core.clone();
        tokio::task::spawn_blocking(move || {
            for items in runs {
                run_batch(&core, items);
            }
            drop(permit);
        });
    }
}

fn run_batch(core: &SessionCore, items: Vec<Item>) {
    if items.len() == 1 {
        let it = items.into_iter().next().expect("one item");
        let r = core.run_now(&it.inputs);
        let _ = it.reply.send(r);
        return;
    }
    core.stats
        .batched_requests
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    let total: u32 = items.iter().map(|i| i.rows).sum();
    // Concatenate along dimension 0 (row-major: byte concatenation).
    let mut merged = Vec::with_capacity(items[0].inputs.len());
    for k in 0..items[0].inputs.len() {
        let first = &items[0].inputs[k];
        let mut dims = first.dims.clone();
        dims[0] = total;
        let mut data = Vec::with_capacity(items.iter().map(|i| i.inputs[k].data.len()).sum());
        for it in &items {
            data.extend_from_slice(&it.inputs[k].data);
        }
        merged.push(Tensor {
            ty: first.ty,
            dims,
            data,
        });
    }
    let requests = items.len();
    match core.run_for(&merged, requests) {
        Ok(outs)
            if outs
                .iter()
                .all(|o| o.shape.first() == Some(&i64::from(total))) =>
        {
            let mut offsets = vec![0usize; outs.len()];
            for it in items {
                let mut mine = Vec::with_capacity(outs.len());
                for (j, o) in outs.iter().enumerate() {
                    let row_bytes = o.data.len() / total as usize;
                    let n = row_bytes * it.rows as usize;
                    let mut shape = o.shape.clone();
                    shape[0] = i64::from(it.rows);
                    mine.push(RawOutput {
                        ty: o.ty,
                        shape,
                        data: o.data[offsets[j]..offsets[j] + n].to_vec(),
                    });
                    offsets[j] += n;
                }
                let _ = it.reply.send(Ok(mine));
            }
        }
        _ => {
            // Either the batch failed (one bad request must not fail the others) or an
            // output is not batch-major: run each request on its own.
            for it in items {
                let r = core.run_now(&it.inputs);
                let _ = it.reply.send(r);
            }
        }
    }
}
