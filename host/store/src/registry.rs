//! Typed records (tenants, functions, versions, aliases) over a [`MetadataStore`].
//!
//! Where each record lives is [`crate::keys`]' business (its table lists every layout).
//!
//! A deploy writes the function item (its `next_version` counter, compare-and-swap on
//! the item version) and the new version item in one transaction, so a version is
//! either fully recorded or absent. Alias moves keep a bounded history for rollback.

use crate::keys;
use crate::{Condition, Item, MetadataStore, StoreError, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Names a tenant cannot take: the layers above reserve them (the API's top-level
/// paths, the public model namespace).
pub const RESERVED_TENANT_NAMES: &[&str] = &[
    "api", "invoke", "metrics", "healthz", "readyz", "v1", "admin", "static", "internal", "public",
    "console",
];
/// How many earlier targets an alias remembers for rollback.
pub const ALIAS_HISTORY: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Ceilings a tenant's functions cannot exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    pub max_memory_mb: u32,
    pub max_timeout_ms: u64,
    /// Requests per second over all the tenant's functions (token bucket); unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rps: Option<u32>,
    /// Invocations running at once over all the tenant's functions; unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_memory_mb: 256,
            max_timeout_ms: 30_000,
            max_rps: None,
            max_concurrency: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub name: String,
    pub limits: TenantLimits,
    pub created_at: String,
}

/// Per-function settings; unset values fall back to the node defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Environment variables for the guest. As stored, each value is sealed by the api
    /// layer with the node's secrets key (`sealed:v1:...`, bound to tenant, function and
    /// name); records written before sealing existed hold plain text until their next
    /// config write. This crate never sees or needs the values in the clear.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Anyone may call the function's HTTP endpoint (no credentials). Off by default:
    /// callers need a key or token with the invoker role (or better) in the tenant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Invocations of this function running at once; unset: no limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Hosts the function may call over outbound HTTP (`host`, `host:port`,
    /// `*.domain`); empty (the default): no outbound requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_outbound: Vec<String>,
    /// Asynchronous (Event) invocations: retries, maximum age, destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_invoke: Option<crate::events::AsyncConfig>,
    /// Scheduled triggers (cron, UTC): each tick fires one Event invocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::events::Schedule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Function {
    pub tenant: String,
    pub name: String,
    pub config: FunctionConfig,
    /// The highest version deployed so far (0 = none).
    pub latest_version: u32,
    pub created_at: String,
    pub updated_at: String,
}

/// Which triggers a component can serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exports {
    pub http: bool,
    pub event: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Version {
    pub tenant: String,
    pub function: String,
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    pub exports: Exports,
    pub created_at: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alias {
    pub name: String,
    pub version: u32,
    /// Earlier targets, most recent last.
    pub history: Vec<u32>,
    pub updated_at: String,
}

/// Validate a tenant, function or alias name: `[a-z][a-z0-9-]{0,62}`.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{kind} name {name:?} is invalid: use 1-63 characters a-z, 0-9 and '-', starting with a letter"
        )))
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn to_attrs<T: Serialize>(v: &T) -> Result<Map<String, Value>> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(RegistryError::Invalid("record is not an object".into())),
        Err(e) => Err(RegistryError::Invalid(e.to_string())),
    }
}

pub(crate) fn now_rfc3339() -> String {
    now()
}

pub(crate) fn attrs_of<T: Serialize>(v: &T) -> Result<Map<String, Value>> {
    to_attrs(v)
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: &Item) -> Result<T> {
    serde_json::from_value(Value::Object(item.attrs.clone()))
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.pk, item.sk)).into())
}

/// [`from_item`] without copying the item's attributes (bulk reads).
pub(crate) fn from_item_owned<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T> {
    let Item { pk, sk, attrs, .. } = item;
    serde_json::from_value(Value::Object(attrs))
        .map_err(|e| StoreError::Corrupt(format!("{pk}/{sk}: {e}")).into())
}

/// What a deploy records.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub sha256: String,
    pub size: u64,
    pub exports: Exports,
    pub description: String,
    /// Replaces the function's config when given (first deploy: the initial config).
    pub config: Option<FunctionConfig>,
}

/// The typed registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn MetadataStore>,
}

impl Registry {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Registry { store }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    // ---- tenants ----

    pub async fn create_tenant(&self, name: &str, limits: TenantLimits) -> Result<Tenant> {
        validate_name("tenant", name)?;
        if RESERVED_TENANT_NAMES.contains(&name) {
            return Err(RegistryError::Invalid(format!(
                "tenant name {name:?} is reserved"
            )));
        }
        if limits.max_memory_mb == 0
            || limits.max_timeout_ms == 0
            || limits.max_rps == Some(0)
            || limits.max_concurrency == Some(0)
        {
            return Err(RegistryError::Invalid(
                "tenant limits must be positive".into(),
            ));
        }
        let t = Tenant {
            name: name.to_string(),
            limits,
            created_at: now(),
        };
        let key = keys::tenant(name);
        match self
            .store
            .put(&key.pk, &key.sk, to_attrs(&t)?, Condition::NotExists)
            .await
        {
            Ok(_) => Ok(t),
            Err(StoreError::ConditionFailed { .. }) => Err(RegistryError::Conflict(format!(
                "tenant {name:?} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant> {
        let key = keys::tenant(name);
        match self.store.get(&key.pk, &key.sk).await? {
            Some(item) => from_item(&item),
            None => Err(RegistryError::NotFound(format!(
                "tenant {name:?} does not exist"
            ))),
        }
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        let all = keys::tenants();
        self.store
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    // ---- functions ----

    async fn function_item(&self, tenant: &str, name: &str) -> Result<Option<(Item, Function)>> {
        let key = keys::function(tenant, name);
        match self.store.get(&key.pk, &key.sk).await? {
            Some(item) => {
                let f = from_item(&item)?;
                Ok(Some((item, f)))
            }
            None => Ok(None),
        }
    }

    pub async fn function(&self, tenant: &str, name: &str) -> Result<Function> {
        match self.function_item(tenant, name).await? {
            Some((_, f)) => Ok(f),
            None => {
                // Say which part is missing: the tenant or the function.
                self.tenant(tenant).await?;
                Err(RegistryError::NotFound(format!(
                    "function {name:?} does not exist in tenant {tenant:?}"
                )))
            }
        }
    }

    /// A function's record, or `None` when there is none. One read either way (unlike
    /// [`Registry::function`], it does not read the tenant to say which part is
    /// missing), so a caller cannot tell "no such tenant" from "no such function" by
    /// timing.
    pub async fn find_function(&self, tenant: &str, name: &str) -> Result<Option<Function>> {
        Ok(self.function_item(tenant, name).await?.map(|(_, f)| f))
    }

    pub async fn functions(&self, tenant: &str) -> Result<Vec<Function>> {
        self.tenant(tenant).await?;
        let all = keys::functions(tenant);
        self.store
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    /// Record a new immutable version (creating the function on first deploy).
    /// The artifact must already be stored.
    pub async fn add_version(
        &self,
        tenant: &str,
        function: &str,
        new: NewVersion,
    ) -> Result<Version> {
        validate_name("function", function)?;
        self.tenant(tenant).await?;
        // Optimistic concurrency: retry when a concurrent deploy took our number.
        for _ in 0..16 {
            let existing = self.function_item(tenant, function).await?;
            let ts = now();
            let (mut f, cond) = match existing {
                Some((item, f)) => (f, Condition::VersionIs(item.version)),
                None => (
                    Function {
                        tenant: tenant.into(),
                        name: function.into(),
                        config: FunctionConfig::default(),
                        latest_version: 0,
                        created_at: ts.clone(),
                        updated_at: ts.clone(),
                    },
                    Condition::NotExists,
                ),
            };
            let number = f.latest_version + 1;
            f.latest_version = number;
            f.updated_at = ts.clone();
            if let Some(cfg) = &new.config {
                f.config = cfg.clone();
            }
            let v = Version {
                tenant: tenant.into(),
                function: function.into(),
                version: number,
                sha256: new.sha256.clone(),
                size: new.size,
                exports: new.exports,
                created_at: ts,
                description: new.description.clone(),
            };
            let ops = vec![
                keys::function(tenant, function).put(to_attrs(&f)?, cond),
                keys::function_version(tenant, function, number)
                    .put(to_attrs(&v)?, Condition::NotExists),
            ];
            match self.store.transact(ops).await {
                Ok(()) => return Ok(v),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(format!(
            "too many concurrent deploys of {tenant}/{function}; retry"
        )))
    }

    pub async fn set_config(
        &self,
        tenant: &str,
        function: &str,
        config: FunctionConfig,
    ) -> Result<Function> {
        for _ in 0..16 {
            let Some((item, mut f)) = self.function_item(tenant, function).await? else {
                return self.function(tenant, function).await; // the NotFound error
            };
            f.config = config.clone();
            f.updated_at = now();
            // The schedule index changes with the config, in the same transaction.
            let index_key = keys::schedule_index(tenant, function);
            let index = if f.config.schedules.is_empty() {
                index_key.delete(Condition::Always)
            } else {
                index_key.put(
                    to_attrs(&serde_json::json!({"tenant": tenant, "function": function}))?,
                    Condition::Always,
                )
            };
            let ops = vec![
                WriteOp::Put {
                    pk: item.pk.clone(),
                    sk: item.sk.clone(),
                    attrs: to_attrs(&f)?,
                    condition: Condition::VersionIs(item.version),
                },
                index,
            ];
            match self.store.transact(ops).await {
                Ok(_) => return Ok(f),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "concurrent config updates; retry".into(),
        ))
    }

    pub async fn version(&self, tenant: &str, function: &str, version: u32) -> Result<Version> {
        let key = keys::function_version(tenant, function, version);
        match self.store.get(&key.pk, &key.sk).await? {
            Some(item) => from_item(&item),
            None => {
                self.function(tenant, function).await?;
                Err(RegistryError::NotFound(format!(
                    "version {version} of {tenant}/{function} does not exist"
                )))
            }
        }
    }

    pub async fn versions(&self, tenant: &str, function: &str) -> Result<Vec<Version>> {
        self.function(tenant, function).await?;
        let all = keys::function_versions(tenant, function);
        self.store
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    /// Delete one version; refused while an alias points at it.
    pub async fn delete_version(&self, tenant: &str, function: &str, version: u32) -> Result<()> {
        self.version(tenant, function, version).await?;
        let aliases = self.aliases(tenant, function).await?;
        if let Some(a) = aliases.iter().find(|a| a.version == version) {
            return Err(RegistryError::Conflict(format!(
                "alias {:?} points at version {version}; move it first",
                a.name
            )));
        }
        // Guard against a concurrent alias flip onto this version: each alias must be
        // unchanged while we delete.
        let mut ops =
            vec![keys::function_version(tenant, function, version).delete(Condition::Exists)];
        for a in &aliases {
            let key = keys::alias(tenant, function, &a.name);
            let item = self.store.get(&key.pk, &key.sk).await?;
            if let Some(item) = item {
                ops.push(WriteOp::Check {
                    pk: item.pk,
                    sk: item.sk,
                    condition: Condition::VersionIs(item.version),
                });
            }
        }
        self.store.transact(ops).await.map_err(|e| match e {
            StoreError::TransactionCancelled { .. } => {
                RegistryError::Conflict("the function changed while deleting; retry".into())
            }
            e => e.into(),
        })
    }

    /// Delete a function with all its versions and aliases.
    /// Returns the SHA-256s its versions referenced (for artifact GC).
    pub async fn delete_function(&self, tenant: &str, function: &str) -> Result<Vec<String>> {
        self.function(tenant, function).await?;
        let children = keys::function_children(tenant, function);
        let children = self
            .store
            .query_all(&children.pk, &children.sk_prefix)
            .await?;
        let mut shas = Vec::new();
        // Remove the function item first: from then on it is invisible to resolution.
        let key = keys::function(tenant, function);
        self.store
            .delete(&key.pk, &key.sk, Condition::Exists)
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => RegistryError::NotFound(format!(
                    "function {function:?} does not exist in tenant {tenant:?}"
                )),
                e => e.into(),
            })?;
        let index = keys::schedule_index(tenant, function);
        self.store
            .delete(&index.pk, &index.sk, Condition::Always)
            .await?;
        for chunk in children.chunks(50) {
            let ops = chunk
                .iter()
                .map(|i| {
                    if let Some(sha) = i.str("sha256") {
                        shas.push(sha.to_string());
                    }
                    WriteOp::Delete {
                        pk: i.pk.clone(),
                        sk: i.sk.clone(),
                        condition: Condition::Always,
                    }
                })
                .collect();
            self.store.transact(ops).await?;
        }
        Ok(shas)
    }

    /// Every SHA-256 any version of any function of any tenant references.
    pub async fn referenced_artifacts(&self) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        for t in self.tenants().await? {
            for f in self.functions(&t.name).await? {
                let versions = keys::function_versions(&t.name, &f.name);
                for v in self
                    .store
                    .query_all(&versions.pk, &versions.sk_prefix)
                    .await?
                {
                    if let Some(sha) = v.str("sha256") {
                        out.insert(sha.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    // ---- aliases ----

    pub async fn alias(&self, tenant: &str, function: &str, alias: &str) -> Result<Alias> {
        let key = keys::alias(tenant, function, alias);
        match self.store.get(&key.pk, &key.sk).await? {
            Some(item) => from_item(&item),
            None => {
                self.function(tenant, function).await?;
                Err(RegistryError::NotFound(format!(
                    "alias {alias:?} of {tenant}/{function} does not exist"
                )))
            }
        }
    }

    pub async fn aliases(&self, tenant: &str, function: &str) -> Result<Vec<Alias>> {
        let all = keys::aliases(tenant, function);
        self.store
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    /// Point `alias` at `version` (which must exist), remembering the previous target.
    pub async fn set_alias(
        &self,
        tenant: &str,
        function: &str,
        alias: &str,
        version: u32,
    ) -> Result<Alias> {
        validate_name("alias", alias)?;
        let key = keys::alias(tenant, function, alias);
        for _ in 0..16 {
            // The version must exist at commit time: a Check op guards it.
            self.version(tenant, function, version).await?;
            let current = self.store.get(&key.pk, &key.sk).await?;
            let (cond, history) = match &current {
                Some(item) => {
                    let a: Alias = from_item(item)?;
                    let mut h = a.history;
                    if a.version != version {
                        h.push(a.version);
                    }
                    if h.len() > ALIAS_HISTORY {
                        h.drain(..h.len() - ALIAS_HISTORY);
                    }
                    (Condition::VersionIs(item.version), h)
                }
                None => (Condition::NotExists, Vec::new()),
            };
            let a = Alias {
                name: alias.into(),
                version,
                history,
                updated_at: now(),
            };
            let ops = vec![
                key.clone().put(to_attrs(&a)?, cond),
                keys::function_version(tenant, function, version).check(Condition::Exists),
            ];
            match self.store.transact(ops).await {
                Ok(()) => return Ok(a),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "concurrent alias updates; retry".into(),
        ))
    }

    /// Move `alias` back to its previous target.
    pub async fn rollback_alias(&self, tenant: &str, function: &str, alias: &str) -> Result<Alias> {
        let key = keys::alias(tenant, function, alias);
        for _ in 0..16 {
            let Some(item) = self.store.get(&key.pk, &key.sk).await? else {
                return self.alias(tenant, function, alias).await; // NotFound
            };
            let mut a: Alias = from_item(&item)?;
            let Some(prev) = a.history.pop() else {
                return Err(RegistryError::Conflict(format!(
                    "alias {alias:?} has no earlier version to roll back to"
                )));
            };
            a.version = prev;
            a.updated_at = now();
            let ops = vec![
                key.clone()
                    .put(to_attrs(&a)?, Condition::VersionIs(item.version)),
                keys::function_version(tenant, function, prev).check(Condition::Exists),
            ];
            match self.store.transact(ops).await {
                Ok(()) => return Ok(a),
                Err(StoreError::TransactionCancelled { index: 1, .. }) => {
                    return Err(RegistryError::Conflict(format!(
                        "version {prev} (the previous target of {alias:?}) was deleted"
                    )));
                }
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "concurrent alias updates; retry".into(),
        ))
    }

    pub async fn delete_alias(&self, tenant: &str, function: &str, alias: &str) -> Result<()> {
        self.alias(tenant, function, alias).await?;
        let key = keys::alias(tenant, function, alias);
        self.store
            .delete(&key.pk, &key.sk, Condition::Always)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("f", "hello-world2").is_ok());
        for bad in [
            "",
            "Hello",
            "1abc",
            "a_b",
            "a-",
            &"a".repeat(64),
            "a/b",
            "a b",
        ] {
            assert!(validate_name("f", bad).is_err(), "{bad:?}");
        }
    }
}
