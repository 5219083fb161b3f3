//! The model registry: tenant-scoped, versioned, content-addressed ONNX models.
//!
//! | item          | pk                      | sk                |
//! |---------------|-------------------------|-------------------|
//! | model         | `T#{tenant}`            | `MD#{model}`      |
//! | model version | `M#{tenant}#{model}`    | `V#{version:010}` |
//!
//! Public models live in the reserved namespace [`PUBLIC_NAMESPACE`] (no tenant can
//! take that name). A tenant's `load-by-name` looks in its own namespace first, then in
//! the public one; it never reaches another tenant's namespace ([`Registry::resolve_model`]).
//! A push writes the model item (counter, compare-and-swap) and the version item in one
//! transaction, like a function deploy.

use crate::registry::{Registry, RegistryError, Result, validate_name};
use crate::{Condition, StoreError, WriteOp};
use serde::{Deserialize, Serialize};

/// The namespace of models every tenant may load.
pub const PUBLIC_NAMESPACE: &str = "public";

/// How a model is served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Execution-provider preference (`tensorrt`, `cuda`, `cpu`); empty = node default.
    #[serde(default)]
    pub providers: Vec<String>,
    /// `next` (fall back down the list) or `refuse`; unset = node default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Dynamic batching: most rows per run (0/1 = off) and the wait for company.
    #[serde(default)]
    pub max_batch: u32,
    #[serde(default)]
    pub max_delay_us: u64,
    /// The model computes each output row from the same input row alone (no batch-wide
    /// statistics such as dynamic activation quantisation or batch normalisation in
    /// training mode). Only such models are batched across requests (`max_batch`);
    /// others run one request per run. Off unless the owner declares it, so configs
    /// stored before it existed read as off; not written when off, so nodes that
    /// predate it still read configs that do not set it. (Chat models batch decode
    /// steps by `max_batch` whatever this says.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_independent: bool,
    /// TensorRT: fp16 engines.
    #[serde(default)]
    pub trt_fp16: bool,
    /// OpenAI-compatible serving: `/v1/embeddings` or `/v1/chat/completions` runs this
    /// function of the model's tenant with this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<Serve>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// `embeddings` (`/v1/embeddings`) or `chat` (`/v1/chat/completions`).
    pub kind: String,
    /// The function (same tenant) that runs requests.
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub tenant: String,
    pub name: String,
    pub latest_version: u32,
    pub config: ModelConfig,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub tenant: String,
    pub model: String,
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    /// Inputs/outputs as the host read them at upload (name, type, shape).
    #[serde(default)]
    pub signature: serde_json::Value,
    pub created_at: String,
    #[serde(default)]
    pub description: String,
}

/// What a model push records.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub sha256: String,
    pub size: u64,
    /// Inputs/outputs as read at upload.
    pub signature: serde_json::Value,
    pub description: String,
    /// Replaces the model's config when given.
    pub config: Option<ModelConfig>,
}

fn model_pk(tenant: &str, model: &str) -> String {
    format!("M#{tenant}#{model}")
}

/// Splits `name` or `name@version`.
pub fn parse_model_ref(s: &str) -> Result<(&str, Option<u32>)> {
    match s.split_once('@') {
        None => Ok((s, None)),
        Some((n, v)) => {
            let v: u32 = v.parse().map_err(|_| {
                RegistryError::Invalid(format!("model version {v:?} is not a number"))
            })?;
            Ok((n, Some(v)))
        }
    }
}

impl Registry {
    async fn namespace_exists(&self, tenant: &str) -> Result<()> {
        if tenant == PUBLIC_NAMESPACE {
            return Ok(());
        }
        self.tenant(tenant).await.map(|_| ())
    }

    async fn model_item(&self, tenant: &str, name: &str) -> Result<Option<(u64, Model)>> {
        match self
            .store()
            .get(&format!("T#{tenant}"), &format!("MD#{name}"))
            .await?
        {
            Some(item) => {
                let m: Model = serde_json::from_value(serde_json::Value::Object(
                    item.attrs.clone(),
                ))
                .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.pk, item.sk)))?;
                Ok(Some((item.version, m)))
            }
            None => Ok(None),
        }
    }

    /// Records a new immutable model version (creating the model on first push). The
    /// model file must already be in the artifact store.
    pub async fn add_model_version(
        &self,
        tenant: &str,
        name: &str,
        new: NewModelVersion,
    ) -> Result<ModelVersion> {
        let NewModelVersion {
            sha256,
            size,
            signature,
            description,
            config,
        } = new;
        validate_name("model", name)?;
        self.namespace_exists(tenant).await?;
        for _ in 0..16 {
            let ts = crate::registry::now_rfc3339();
            let (mut m, cond) = match self.model_item(tenant, name).await? {
                Some((v, m)) => (m, Condition::VersionIs(v)),
                None => (
                    Model {
                        tenant: tenant.into(),
                        name: name.into(),
                        latest_version: 0,
                        config: ModelConfig::default(),
                        created_at: ts.clone(),
                        updated_at: ts.clone(),
                    },
                    Condition::NotExists,
                ),
            };
            m.latest_version += 1;
            m.updated_at = ts.clone();
            if let Some(c) = &config {
                m.config = c.clone();
            }
            let v = ModelVersion {
                tenant: tenant.into(),
                model: name.into(),
                version: m.latest_version,
                sha256: sha256.clone(),
                size,
                signature: signature.clone(),
                created_at: ts,
                description: description.clone(),
            };
            let ops = vec![
                WriteOp::Put {
                    pk: format!("T#{tenant}"),
                    sk: format!("MD#{name}"),
                    attrs: crate::registry::attrs_of(&m)?,
                    condition: cond,
                },
                WriteOp::Put {
                    pk: model_pk(tenant, name),
                    sk: format!("V#{:010}", v.version),
                    attrs: crate::registry::attrs_of(&v)?,
                    condition: Condition::NotExists,
                },
            ];
            match self.store().transact(ops).await {
                Ok(()) => return Ok(v),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(format!(
            "too many concurrent pushes of {tenant}/{name}; retry"
        )))
    }

    pub async fn set_model_config(
        &self,
        tenant: &str,
        name: &str,
        config: ModelConfig,
    ) -> Result<Model> {
        for _ in 0..16 {
            let Some((v, mut m)) = self.model_item(tenant, name).await? else {
                return Err(RegistryError::NotFound(format!(
                    "model {name:?} does not exist in {tenant:?}"
                )));
            };
            m.config = config.clone();
            m.updated_at = crate::registry::now_rfc3339();
            let op = WriteOp::Put {
                pk: format!("T#{tenant}"),
                sk: format!("MD#{name}"),
                attrs: crate::registry::attrs_of(&m)?,
                condition: Condition::VersionIs(v),
            };
            match self.store().transact(vec![op]).await {
                Ok(()) => return Ok(m),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "concurrent model updates; retry".into(),
        ))
    }

    pub async fn model(&self, tenant: &str, name: &str) -> Result<Model> {
        match self.model_item(tenant, name).await? {
            Some((_, m)) => Ok(m),
            None => {
                self.namespace_exists(tenant).await?;
                Err(RegistryError::NotFound(format!(
                    "model {name:?} does not exist in {tenant:?}"
                )))
            }
        }
    }

    pub async fn models(&self, tenant: &str) -> Result<Vec<Model>> {
        self.namespace_exists(tenant).await?;
        self.store()
            .query_all(&format!("T#{tenant}"), "MD#")
            .await?
            .iter()
            .map(|i| {
                serde_json::from_value(serde_json::Value::Object(i.attrs.clone()))
                    .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", i.pk, i.sk)).into())
            })
            .collect()
    }

    pub async fn model_versions(&self, tenant: &str, name: &str) -> Result<Vec<ModelVersion>> {
        self.model(tenant, name).await?;
        self.store()
            .query_all(&model_pk(tenant, name), "V#")
            .await?
            .iter()
            .map(|i| {
                serde_json::from_value(serde_json::Value::Object(i.attrs.clone()))
                    .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", i.pk, i.sk)).into())
            })
            .collect()
    }

    /// One version (`None` = latest).
    pub async fn model_version(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<(Model, ModelVersion)> {
        let m = self.model(tenant, name).await?;
        let n = version.unwrap_or(m.latest_version);
        let item = self
            .store()
            .get(&model_pk(tenant, name), &format!("V#{n:010}"))
            .await?
            .ok_or_else(|| {
                RegistryError::NotFound(format!("model {tenant}/{name} has no version {n}"))
            })?;
        let v = serde_json::from_value(serde_json::Value::Object(item.attrs.clone()))
            .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", item.pk, item.sk)))?;
        Ok((m, v))
    }

    /// `load-by-name` resolution for `tenant`: its own model, else a public one.
    /// Returns the namespace it was found in. Never looks at other tenants.
    pub async fn resolve_model(
        &self,
        tenant: &str,
        reference: &str,
    ) -> Result<(Model, ModelVersion)> {
        let (name, version) = parse_model_ref(reference)?;
        validate_name("model", name)?;
        if tenant != PUBLIC_NAMESPACE && self.model_item(tenant, name).await?.is_some() {
            return self.model_version(tenant, name, version).await;
        }
        if self.model_item(PUBLIC_NAMESPACE, name).await?.is_some() {
            return self.model_version(PUBLIC_NAMESPACE, name, version).await;
        }
        Err(RegistryError::NotFound(format!(
            "no model {name:?} in this tenant or among public models"
        )))
    }

    /// Deletes a model and all its versions; returns their SHA-256s.
    pub async fn delete_model(&self, tenant: &str, name: &str) -> Result<Vec<String>> {
        let versions = self.model_versions(tenant, name).await?;
        // The model item goes first: from then on nothing resolves to it, and version
        // items left by a crash here are unreferenced (garbage collection frees files).
        self.store()
            .delete(
                &format!("T#{tenant}"),
                &format!("MD#{name}"),
                Condition::Always,
            )
            .await?;
        let mut shas = Vec::new();
        for v in &versions {
            self.store()
                .delete(
                    &model_pk(tenant, name),
                    &format!("V#{:010}", v.version),
                    Condition::Always,
                )
                .await?;
            shas.push(v.sha256.clone());
        }
        Ok(shas)
    }

    /// Every model file any version references (for garbage collection).
    pub async fn referenced_models(&self) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        let mut spaces: Vec<String> = self.tenants().await?.into_iter().map(|t| t.name).collect();
        spaces.push(PUBLIC_NAMESPACE.into());
        for t in spaces {
            for m in self.models(&t).await? {
                for v in self.store().query_all(&model_pk(&t, &m.name), "V#").await? {
                    if let Some(sha) = v.str("sha256") {
                        out.insert(sha.to_string());
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbMetadataStore;
    use crate::registry::TenantLimits;
    use std::sync::Arc;

    /// Configs stored before `row_independent` existed still read (as not declared, so
    /// not batched); one that declares it round-trips; one that does not is written
    /// without the field, so older nodes keep reading it.
    #[test]
    fn row_independence_is_off_unless_declared_and_old_configs_still_read() {
        let old: ModelConfig = serde_json::from_str(
            r#"{"providers":[],"max_batch":32,"max_delay_us":2000,"trt_fp16":false}"#,
        )
        .unwrap();
        assert_eq!((old.max_batch, old.row_independent), (32, false));
        let on: ModelConfig =
            serde_json::from_str(r#"{"max_batch":32,"row_independent":true}"#).unwrap();
        assert!(on.row_independent);
        let again: ModelConfig =
            serde_json::from_str(&serde_json::to_string(&on).unwrap()).unwrap();
        assert_eq!(again, on);
        assert!(
            !serde_json::to_string(&old)
                .unwrap()
                .contains("row_independent")
        );
        assert!(serde_json::from_str::<ModelConfig>(r#"{"row_independent":"yes"}"#).is_err());
    }

    #[tokio::test]
    async fn models_are_tenant_scoped_with_public_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::new(Arc::new(
            RedbMetadataStore::open(dir.path().join("m.redb")).unwrap(),
        ));
        r.create_tenant("alice", TenantLimits::default())
            .await
            .unwrap();
        r.create_tenant("bob", TenantLimits::default())
            .await
            .unwrap();
        let v = |sha: &str| NewModelVersion {
            sha256: sha.into(),
            size: 1,
            ..Default::default()
        };
        r.add_model_version("alice", "secret", v("aa"))
            .await
            .unwrap();
        r.add_model_version("alice", "secret", v("ab"))
            .await
            .unwrap();
        r.add_model_version(PUBLIC_NAMESPACE, "shared", v("bb"))
            .await
            .unwrap();
        r.add_model_version("bob", "shared", v("cc")).await.unwrap();

        // Own model, latest and pinned.
        assert_eq!(
            r.resolve_model("alice", "secret").await.unwrap().1.sha256,
            "ab"
        );
        assert_eq!(
            r.resolve_model("alice", "secret@1").await.unwrap().1.sha256,
            "aa"
        );
        // Bob can never reach alice's private model.
        assert!(matches!(
            r.resolve_model("bob", "secret").await,
            Err(RegistryError::NotFound(_))
        ));
        // A tenant's own model shadows the public one; others get the public one.
        assert_eq!(
            r.resolve_model("bob", "shared").await.unwrap().1.sha256,
            "cc"
        );
        assert_eq!(
            r.resolve_model("alice", "shared").await.unwrap().1.sha256,
            "bb"
        );
        assert!(matches!(
            r.resolve_model("alice", "secret@9").await,
            Err(RegistryError::NotFound(_))
        ));
        assert!(matches!(
            r.resolve_model("alice", "x@y").await,
            Err(RegistryError::Invalid(_))
        ));
        assert!(matches!(
            r.resolve_model("alice", "../etc").await,
            Err(RegistryError::Invalid(_))
        ));
        let refs = r.referenced_models().await.unwrap();
        assert!(["aa", "ab", "bb", "cc"].iter().all(|s| refs.contains(*s)));
        r.delete_model("alice", "secret").await.unwrap();
        assert!(!r.referenced_models().await.unwrap().contains("aa"));
    }
}
