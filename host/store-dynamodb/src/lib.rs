//! # helixflow-store-dynamodb: the `MetadataStore` on Amazon DynamoDB
//!
//! ## Table design (single table)
//!
//! | attribute | type | role |
//! |-----------|------|------|
//! | `pk`      | S    | partition key (the item's `pk`) |
//! | `sk`      | S    | sort key (the item's `sk`) |
//! | `v`       | N    | the item version, 1 on create, `ADD v 1` on every write |
//! | `a`       | S    | the item's attributes as a JSON object |
//! | `expires_at` | N | optional; copied from the attributes; the table's TTL attribute |
//!
//! Billing `PAY_PER_REQUEST`. Reads are strongly consistent. Conditional writes map to
//! `attribute_not_exists(pk)` / `attribute_exists(pk)` / `v = :expected`; every
//! multi-item write is one `TransactWriteItems`, whose `CancellationReasons` name the
//! operation that failed its condition. An item whose `expires_at` (Unix seconds) has
//! passed is absent to reads and conditions, before DynamoDB's TTL deletes it (lazily).
//!
//! Connection settings come from the usual AWS environment: `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`), and
//! `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL` for a local server.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, ScalarAttributeType, TransactWriteItem, Update,
};
use helixflow_store::{
    Condition, Item, MetadataStore, Page, QueryPage, StoreError, WriteOp, validate_transaction,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The table's definition, in DynamoDB's own words. `create_table` builds from it, and a
/// test checks that the CloudFormation template in `infra/` says the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    /// (attribute name, attribute type)
    pub attributes: Vec<(&'static str, &'static str)>,
    /// (attribute name, key type)
    pub keys: Vec<(&'static str, &'static str)>,
    pub billing_mode: &'static str,
    /// The attribute DynamoDB's TTL deletes expired items by.
    pub ttl_attribute: &'static str,
}

impl TableDefinition {
    pub fn current() -> Self {
        TableDefinition {
            attributes: vec![("pk", "S"), ("sk", "S")],
            keys: vec![("pk", "HASH"), ("sk", "RANGE")],
            billing_mode: "PAY_PER_REQUEST",
            ttl_attribute: helixflow_store::EXPIRES_AT,
        }
    }
}

/// `MetadataStore` on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoDbMetadataStore {
    client: Client,
    table: String,
}

fn unavailable<E: std::fmt::Debug>(what: &str, e: SdkError<E>) -> StoreError {
    // Service errors carry the useful text in their Debug form (code + message).
    match &e {
        SdkError::ServiceError(se) => {
            let text = format!("{:?}", se.err());
            if text.contains("ValidationException") {
                StoreError::Invalid(format!("DynamoDB {what}: {text}"))
            } else {
                StoreError::Unavailable(format!("DynamoDB {what}: {text}"))
            }
        }
        other => StoreError::Unavailable(format!("DynamoDB {what}: {other}")),
    }
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.to_string())),
        ("sk".to_string(), AttributeValue::S(sk.to_string())),
    ])
}

fn decode(map: &HashMap<String, AttributeValue>) -> Result<Item> {
    let s = |k: &str| match map.get(k) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Corrupt(format!(
            "DynamoDB item without string attribute {k:?}"
        ))),
    };
    let pk = s("pk")?;
    let sk = s("sk")?;
    let version = match map.get("v") {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|e| StoreError::Corrupt(format!("{pk}/{sk}: version {n:?}: {e}")))?,
        _ => return Err(StoreError::Corrupt(format!("{pk}/{sk}: no version"))),
    };
    let attrs: Map<String, Value> = match map.get("a") {
        Some(AttributeValue::S(a)) => {
            serde_json::from_str(a).map_err(|e| StoreError::Corrupt(format!("{pk}/{sk}: {e}")))?
        }
        None => Map::new(),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "{pk}/{sk}: attributes are not a string"
            )));
        }
    };
    Ok(Item {
        pk,
        sk,
        version,
        attrs,
    })
}

/// The condition expression (and its values) for a `Condition`.
/// An expired item (`expires_at <= now`) counts as absent, as on every backend.
fn condition(cond: Condition, now: u64) -> (Option<String>, HashMap<String, AttributeValue>) {
    let now_v = || (":now".to_string(), AttributeValue::N(now.to_string()));
    const LIVE: &str = "(attribute_not_exists(expires_at) OR expires_at > :now)";
    match cond {
        Condition::Always => (None, HashMap::new()),
        Condition::NotExists => (
            Some("attribute_not_exists(pk) OR expires_at <= :now".into()),
            HashMap::from([now_v()]),
        ),
        Condition::Exists => (
            Some(format!("attribute_exists(pk) AND {LIVE}")),
            HashMap::from([now_v()]),
        ),
        Condition::VersionIs(v) => (
            Some(format!("v = :expected AND {LIVE}")),
            HashMap::from([
                (":expected".to_string(), AttributeValue::N(v.to_string())),
                now_v(),
            ]),
        ),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("building a DynamoDB request: {e}"))
}

impl DynamoDbMetadataStore {
    /// A store on `table`, configured from the AWS environment.
    pub fn from_env(table: &str) -> Result<Self> {
        Self::from_env_with(table, helixflow_store::RetryPolicy::default())
    }

    /// Like `from_env`, with an explicit retry policy: the SDK's standard mode retries
    /// throttling (`ProvisionedThroughputExceededException`, `ThrottlingException`) and
    /// transient errors with exponential backoff and jitter, up to `max_attempts`.
    pub fn from_env_with(table: &str, retry: helixflow_store::RetryPolicy) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                StoreError::Invalid("set AWS_REGION for the DynamoDB metadata store".into())
            })?;
        let mut cfg = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(region))
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                    .with_max_attempts(retry.max_attempts.max(1))
                    .with_initial_backoff(retry.initial_backoff)
                    .with_max_backoff(retry.max_backoff),
            );
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            cfg = cfg.credentials_provider(aws_credential_types::Credentials::new(
                id,
                secret,
                env("AWS_SESSION_TOKEN"),
                None,
                "environment",
            ));
        } else {
            return Err(StoreError::Invalid(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the DynamoDB metadata store"
                    .into(),
            ));
        }
        if let Some(endpoint) = env("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| env("AWS_ENDPOINT_URL"))
        {
            cfg = cfg.endpoint_url(endpoint);
        }
        Ok(Self::new(Client::from_conf(cfg.build()), table))
    }

    pub fn new(client: Client, table: &str) -> Self {
        DynamoDbMetadataStore {
            client,
            table: table.to_string(),
        }
    }

    /// Create the table (development and tests; production uses
    /// `infra/cloudformation/helixflow-state.json`). Existing is fine.
    pub async fn create_table(&self) -> Result<()> {
        let def = TableDefinition::current();
        let mut req = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::from(def.billing_mode));
        for (name, ty) in def.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(ty))
                    .build()
                    .map_err(build_err)?,
            );
        }
        for (name, kt) in def.keys {
            req = req.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::from(kt))
                    .build()
                    .map_err(build_err)?,
            );
        }
        let r = req.send().await;
        match r {
            Ok(_) => {}
            Err(e) if format!("{:?}", e.as_service_error()).contains("ResourceInUseException") => {}
            Err(e) => return Err(unavailable("CreateTable", e)),
        }
        let ttl = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(def.ttl_attribute)
            .enabled(true)
            .build()
            .map_err(build_err)?;
        match self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Re-running init on a table whose TTL is already on is fine.
            Err(e) if format!("{:?}", e.as_service_error()).contains("already enabled") => Ok(()),
            Err(e) => Err(unavailable("UpdateTimeToLive", e)),
        }
    }

    fn to_transact_item(&self, op: WriteOp) -> Result<TransactWriteItem> {
        let cond = op.condition();
        let (expr, mut values) = condition(cond, helixflow_store::now_unix());
        let (pk, sk) = {
            let (pk, sk) = op.key();
            (pk.to_string(), sk.to_string())
        };
        Ok(match op {
            WriteOp::Put { attrs, .. } => {
                let json = serde_json::to_string(&attrs)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                values.insert(":a".into(), AttributeValue::S(json));
                values.insert(":one".into(), AttributeValue::N("1".into()));
                // A create (possibly over an expired item) starts at version 1.
                let mut set = vec!["a = :a"];
                let mut tail = String::new();
                if cond == Condition::NotExists {
                    set.push("v = :one");
                } else {
                    tail.push_str(" ADD v :one");
                }
                // The expiry is also a top-level number: DynamoDB's TTL reads it there.
                match attrs
                    .get(helixflow_store::EXPIRES_AT)
                    .and_then(serde_json::Value::as_u64)
                {
                    Some(exp) => {
                        values.insert(":exp".into(), AttributeValue::N(exp.to_string()));
                        set.push("expires_at = :exp");
                    }
                    None => tail.push_str(" REMOVE expires_at"),
                }
                let update_expression = format!("SET {}{tail}", set.join(", "));
                let mut u = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&pk, &sk)))
                    .update_expression(update_expression)
                    .set_expression_attribute_values(Some(values));
                if let Some(e) = expr {
                    u = u.condition_expression(e);
                }
                TransactWriteItem::builder()
                    .update(u.build().map_err(build_err)?)
                    .build()
            }
            WriteOp::Delete { .. } => {
                let mut d = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&pk, &sk)));
                if let Some(e) = expr {
                    d = d.condition_expression(e);
                }
                if !values.is_empty() {
                    d = d.set_expression_attribute_values(Some(values));
                }
                TransactWriteItem::builder()
                    .delete(d.build().map_err(build_err)?)
                    .build()
            }
            WriteOp::Check { .. } => {
                // A check needs a condition; `Always` checks nothing and is skipped by the caller.
                let mut c = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&pk, &sk)))
                    .condition_expression(expr.unwrap_or_else(|| {
                        "attribute_exists(pk) OR attribute_not_exists(pk)".into()
                    }));
                if !values.is_empty() {
                    c = c.set_expression_attribute_values(Some(values));
                }
                TransactWriteItem::builder()
                    .condition_check(c.build().map_err(build_err)?)
                    .build()
            }
        })
    }
}

#[async_trait::async_trait]
impl MetadataStore for DynamoDbMetadataStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let now = helixflow_store::now_unix();
        Ok(out
            .item()
            .map(decode)
            .transpose()?
            .filter(|i| !i.expired(now)))
    }

    async fn query(&self, pk: &str, sk_prefix: &str, page: Page) -> Result<QueryPage> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()));
        q = if sk_prefix.is_empty() {
            q.key_condition_expression("pk = :pk")
        } else {
            q.key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":p", AttributeValue::S(sk_prefix.to_string()))
        };
        if let Some(limit) = page.limit {
            q = q.limit(limit.clamp(1, i32::MAX as usize) as i32);
        }
        if let Some(after) = &page.start_after {
            q = q.set_exclusive_start_key(Some(key(pk, after)));
        }
        let out = q.send().await.map_err(|e| unavailable("Query", e))?;
        let now = helixflow_store::now_unix();
        let items = out
            .items()
            .iter()
            .map(decode)
            .filter(|i| !i.as_ref().is_ok_and(|i| i.expired(now)))
            .collect::<Result<Vec<_>>>()?;
        let next = out.last_evaluated_key().and_then(|k| match k.get("sk") {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        });
        Ok(QueryPage { items, next })
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<()> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        // Keep the caller's indexes for error reporting; skip no-op checks.
        let keys: Vec<(usize, String, String)> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                !matches!(
                    op,
                    WriteOp::Check {
                        condition: Condition::Always,
                        ..
                    }
                )
            })
            .map(|(i, op)| (i, op.key().0.to_string(), op.key().1.to_string()))
            .collect();
        let items = ops
            .into_iter()
            .filter(|op| {
                !matches!(
                    op,
                    WriteOp::Check {
                        condition: Condition::Always,
                        ..
                    }
                )
            })
            .map(|op| self.to_transact_item(op))
            .collect::<Result<Vec<_>>>()?;
        if items.is_empty() {
            return Ok(());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc)) =
                    e.as_service_error()
                {
                    let failed = tc
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    if let Some(pos) = failed
                        && let Some((index, pk, sk)) = keys.get(pos).cloned() {
                            return Err(StoreError::TransactionCancelled { index, pk, sk });
                        }
                }
                Err(unavailable("TransactWriteItems", e))
            }
        }
    }

    fn describe(&self) -> String {
        format!("dynamodb:{}", self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infra_template_matches_the_table_the_code_creates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/cloudformation/helixflow-state.json"
        );
        let t: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let p = &t["Resources"]["MetadataTable"]["Properties"];
        let pairs = |v: &Value, a: &str, b: &str| -> Vec<(String, String)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e[a].as_str().unwrap().to_string(),
                        e[b].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let def = TableDefinition::current();
        let own = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&p["AttributeDefinitions"], "AttributeName", "AttributeType"),
            own(&def.attributes)
        );
        assert_eq!(
            pairs(&p["KeySchema"], "AttributeName", "KeyType"),
            own(&def.keys)
        );
        assert_eq!(p["BillingMode"], def.billing_mode);
        assert!(
            p.get("GlobalSecondaryIndexes").is_none(),
            "the code defines no GSIs"
        );
    }

    /// The shared conformance suite against a real DynamoDB server (DynamoDB Local,
    /// started by scripts/test.sh, which sets AWS_ENDPOINT_URL_DYNAMODB).
    #[tokio::test]
    async fn dynamodb_passes_the_conformance_suite() {
        assert!(
            std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
            "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/test.sh, which starts DynamoDB Local"
        );
        let table = format!("helixflow-conformance-{}", std::process::id());
        let store = DynamoDbMetadataStore::from_env(&table).unwrap();
        store.create_table().await.unwrap();
        helixflow_store::conformance::run_all(&store).await;
    }
}
