//! # helixflow-usage: what each tenant used
//!
//! * [`Meter`]: every invocation a node runs is added, in memory, to the running totals
//!   of its minute and its dimensions (function, trigger, location, key, model, ...);
//!   the node flushes them to the metadata store on an interval
//!   (`helixflow_store::usage`), rewriting each minute's item with its totals so a
//!   repeated flush never counts twice. A node killed with -9 loses at most the totals
//!   since its last flush.
//! * [`Histogram`]: latency in fixed logarithmic buckets, so minutes, nodes and
//!   dimensions merge by adding counts and percentiles stay computable after merging.
//! * [`price`]: price tables with effective-from times; cost is usage x the price in
//!   force when it was used.
//! * [`budget`]: monthly spend caps and requests/tokens-per-minute limits per tenant
//!   and per caller, and the token bucket that enforces the rates.
//! * [`dashboard`]: stored dashboard definitions (the analytics vocabulary:
//!   `cost_per_token`, `latency_by_region`, `model_usage`, ...) as usage queries.
//! * [`rollup`]: an hour of minute rows (every node's) summed per dimensions, so long
//!   ranges read hours, not minutes.
//! * [`query`]: the usage API's parameters (validated: [`UsageError`]) and the series it
//!   answers with.
//! * [`alert`]: alert rules (`cost_threshold`, `performance_degradation`), validated
//!   ([`alert::AlertError`]) and judged over usage rows with the query engine.

pub mod alert;
pub mod budget;
pub mod dashboard;
mod histogram;
mod meter;
pub mod price;
pub mod query;
pub mod rollup;

pub use histogram::Histogram;
pub use meter::{Dims, Meter, Sample};
pub use price::{Price, PriceBook};

/// A usage request that cannot be answered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// Machine-readable: `invalid_metric`, `invalid_dimension`, `invalid_range`,
    /// `invalid_step`, `step_too_fine`, `invalid_time`.
    pub code: &'static str,
    pub message: String,
}

impl UsageError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        UsageError {
            code,
            message: message.into(),
        }
    }
}
