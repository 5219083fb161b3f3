//! Prices and cost: what a unit of usage costs, and from when.
//!
//! A price table is a list of [`Price`]s, each in force from its `from` time until a
//! later entry of the same kind takes over, so a price change never rewrites the cost of
//! usage recorded before it. Entries without a `model` price everything; an entry with a
//! `model` prices that model's tokens and images (requests and GB-seconds stay priced by
//! the generic entry in force). A tenant's own table, when it has one, replaces the
//! node's for that tenant.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One price entry. Rates are in the table's currency; absent rates are zero.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// In force from this Unix time (seconds; default: always).
    #[serde(default)]
    pub from: u64,
    /// Applies to this model's usage only; absent: to all usage without a more specific entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub per_1m_prompt_tokens: f64,
    #[serde(default)]
    pub per_1m_completion_tokens: f64,
    #[serde(default)]
    pub per_1m_embedding_tokens: f64,
    #[serde(default)]
    pub per_gb_second: f64,
    #[serde(default)]
    pub per_1m_requests: f64,
    #[serde(default)]
    pub per_image: f64,
}

impl Price {
    /// Checks the rates (finite, not negative).
    pub fn validate(&self) -> Result<(), String> {
        if !self.from.is_multiple_of(3600) {
            return Err(format!(
                "from ({}) must be a whole hour (Unix seconds divisible by 3600): usage is rolled up by the hour, and each hour is priced at one price",
                self.from
            ));
        }
        for (name, v) in [
            ("per_1m_prompt_tokens", self.per_1m_prompt_tokens),
            ("per_1m_completion_tokens", self.per_1m_completion_tokens),
            ("per_1m_embedding_tokens", self.per_1m_embedding_tokens),
            ("per_gb_second", self.per_gb_second),
            ("per_1m_requests", self.per_1m_requests),
            ("per_image", self.per_image),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a non-negative number, not {v}"));
            }
        }
        Ok(())
    }

    /// The cost of the tokens and images in `counters` (a usage row's totals).
    pub fn model_cost(&self, counters: &BTreeMap<String, u64>) -> f64 {
        let c = |k: &str| counters.get(k).copied().unwrap_or(0) as f64;
        c("prompt_tokens") * self.per_1m_prompt_tokens / 1e6
            + c("completion_tokens") * self.per_1m_completion_tokens / 1e6
            + c("embedding_tokens") * self.per_1m_embedding_tokens / 1e6
            + c("images") * self.per_image
    }

    /// The cost of the requests and GB-seconds in `counters`.
    pub fn compute_cost(&self, counters: &BTreeMap<String, u64>) -> f64 {
        let c = |k: &str| counters.get(k).copied().unwrap_or(0) as f64;
        c("mb_ms") / 1024.0 / 1000.0 * self.per_gb_second
            + c("requests") * self.per_1m_requests / 1e6
    }

    /// Everything in `counters` at this one price.
    pub fn cost(&self, counters: &BTreeMap<String, u64>) -> f64 {
        self.model_cost(counters) + self.compute_cost(counters)
    }
}

/// The price table that applies to one tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceBook(pub Vec<Price>);

impl PriceBook {
    /// The tenant's own table if it has one, else the node's.
    pub fn for_tenant(node: &[Price], tenant: Option<&[Price]>) -> PriceBook {
        match tenant {
            Some(t) if !t.is_empty() => PriceBook(t.to_vec()),
            _ => PriceBook(node.to_vec()),
        }
    }

    /// The latest entry in force at `unix` naming `model` (`None`: naming no model).
    fn latest(&self, unix: u64, model: Option<&str>) -> Option<&Price> {
        self.0
            .iter()
            .filter(|p| p.from <= unix && p.model.as_deref() == model)
            .max_by_key(|p| p.from)
    }

    /// The entry pricing `model`'s tokens at `unix`: the model's own, else the generic one.
    pub fn at(&self, unix: u64, model: Option<&str>) -> Option<&Price> {
        model
            .and_then(|m| self.latest(unix, Some(m)))
            .or_else(|| self.latest(unix, None))
    }

    /// The cost of a usage row's `counters` at `unix` for `model`: tokens and images at
    /// the model's entry (else the generic one), requests and GB-seconds at the generic.
    pub fn cost(&self, unix: u64, model: Option<&str>, counters: &BTreeMap<String, u64>) -> f64 {
        let tokens = self.at(unix, model).map_or(0.0, |p| p.model_cost(counters));
        let compute = self
            .latest(unix, None)
            .map_or(0.0, |p| p.compute_cost(counters));
        tokens + compute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_in_force_is_the_latest_before_and_model_specific_first() {
        let book = PriceBook(vec![
            Price {
                per_1m_requests: 1.0,
                ..Default::default()
            },
            Price {
                from: 1000,
                per_1m_requests: 2.0,
                ..Default::default()
            },
            Price {
                from: 500,
                model: Some("minilm".into()),
                per_1m_embedding_tokens: 0.5,
                ..Default::default()
            },
        ]);
        assert_eq!(book.at(999, None).unwrap().per_1m_requests, 1.0);
        assert_eq!(
            book.at(1000, None).unwrap().per_1m_requests,
            2.0,
            "a change applies from its time"
        );
        assert_eq!(
            book.at(600, Some("minilm"))
                .unwrap()
                .per_1m_embedding_tokens,
            0.5
        );
        assert_eq!(
            book.at(100, Some("minilm")).unwrap().per_1m_requests,
            1.0,
            "before the model's own entry"
        );
        assert_eq!(book.at(2000, Some("other")).unwrap().per_1m_requests, 2.0);
        let counters: BTreeMap<String, u64> = [
            ("requests".to_string(), 2_000_000),
            ("embedding_tokens".to_string(), 4_000_000),
            ("mb_ms".to_string(), 1024 * 1000 * 10),
        ]
        .into();
        let p = Price {
            per_1m_requests: 0.2,
            per_1m_embedding_tokens: 0.02,
            per_gb_second: 0.5,
            ..Default::default()
        };
        assert!((p.cost(&counters) - (0.4 + 0.08 + 5.0)).abs() < 1e-9);
        assert!(
            Price {
                per_gb_second: -1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Price {
                per_image: f64::NAN,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            PriceBook::for_tenant(&book.0, Some(&[])).0.len(),
            3,
            "an empty override is none"
        );
    }
}
