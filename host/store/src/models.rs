//! The model registry: tenant-scoped, versioned, content-addressed ONNX models.
//! Their keys are in [`crate::keys`].
//!
//! Public models live in the reserved namespace [`PUBLIC_NAMESPACE`] (no tenant can
//! take that name). A tenant's `load-by-name` looks in its own namespace first, then in
//! the public one; it never reaches another tenant's namespace ([`Registry::resolve_model`]).
//! A push writes the model item (counter, compare-and-swap) and the version item in one
//! transaction, like a function deploy.

use crate::keys;
use crate::registry::{Registry, RegistryError, Result, validate_name};
use crate::{Condition, StoreError};
use serde::{Deserialize, Serialize};

/// The namespace of models every tenant may load.
pub const PUBLIC_NAMESPACE: &str = "public";

/// How a model is served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Execution-provider preference (`tensorrt`, `cuda`, `cpu`); empty = node default.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub providers: Vec<ExecutionProvider>,
    /// `next` (fall back down the list) or `refuse`; unset = node default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub fallback: Option<ProviderFallback>,
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
    /// OpenAI-compatible serving: embeddings or chat-completion requests naming this
    /// model run this function of the model's tenant with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<Serve>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// What the model answers: embeddings or chat completions.
    #[schema(value_type = String)]
    pub kind: ServeKind,
    /// The function (same tenant) that runs requests.
    pub function: String,
}

/// The choices of a model config: each is stored as its lowercase name (the JSON
/// spelling configs have always used), and an unknown name is refused when the config is
/// read, with a message that lists the allowed ones.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, $allowed:literal,
     parse($s:ident) $parse:block, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored (JSON) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str($s: &str) -> std::result::Result<Self, String> {
                $parse.ok_or_else(|| format!(concat!($what, " {:?} ", $allowed), $s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

choice! {
    /// An execution provider of ONNX Runtime.
    ExecutionProvider, "unknown execution provider", "(use tensorrt, cuda, cpu)",
    // As configs have always been accepted (and stored): any case, surrounding blanks,
    // and `trt` for TensorRT.
    parse(s) {
        match s.trim().to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Some(ExecutionProvider::Tensorrt),
            "cuda" => Some(ExecutionProvider::Cuda),
            "cpu" => Some(ExecutionProvider::Cpu),
            _ => None,
        }
    },
    {
        Tensorrt = "tensorrt",
        Cuda = "cuda",
        Cpu = "cpu",
    }
}

choice! {
    /// What happens when a preferred execution provider cannot load the model.
    ProviderFallback, "fallback", "is not next or refuse",
    parse(s) {
        match s {
            "next" => Some(ProviderFallback::Next),
            "refuse" => Some(ProviderFallback::Refuse),
            _ => None,
        }
    },
    {
        /// Try the next provider of the list.
        Next = "next",
        /// Refuse to load the model.
        Refuse = "refuse",
    }
}

choice! {
    /// The OpenAI-compatible requests a served model answers.
    ServeKind, "serve.kind", "is not supported (embeddings, chat)",
    parse(s) {
        match s {
            "embeddings" => Some(ServeKind::Embeddings),
            "chat" => Some(ServeKind::Chat),
            _ => None,
        }
    },
    {
        /// Embeddings requests.
        Embeddings = "embeddings",
        /// Chat-completion requests.
        Chat = "chat",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Model {
    pub tenant: String,
    pub name: String,
    pub latest_version: u32,
    pub config: ModelConfig,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        let key = keys::model(tenant, name);
        match self.store().get(&key.pk, &key.sk).await? {
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
                keys::model(tenant, name).put(crate::registry::attrs_of(&m)?, cond),
                keys::model_version(tenant, name, v.version)
                    .put(crate::registry::attrs_of(&v)?, Condition::NotExists),
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
            let op = keys::model(tenant, name)
                .put(crate::registry::attrs_of(&m)?, Condition::VersionIs(v));
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
        let all = keys::models(tenant);
        self.store()
            .query_all(&all.pk, &all.sk_prefix)
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
        let all = keys::model_versions(tenant, name);
        self.store()
            .query_all(&all.pk, &all.sk_prefix)
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
        let key = keys::model_version(tenant, name, n);
        let item = self.store().get(&key.pk, &key.sk).await?.ok_or_else(|| {
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
        let key = keys::model(tenant, name);
        self.store()
            .delete(&key.pk, &key.sk, Condition::Always)
            .await?;
        let mut shas = Vec::new();
        for v in &versions {
            let key = keys::model_version(tenant, name, v.version);
            self.store()
                .delete(&key.pk, &key.sk, Condition::Always)
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
                let versions = keys::model_versions(&t, &m.name);
                for v in self
                    .store()
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The choices keep the JSON spelling configs have always had; what was accepted
    /// before still reads (providers in any case, `trt`); anything else is refused when
    /// the config is read, naming the allowed values.
    #[test]
    fn config_choices_keep_their_spelling_and_refuse_unknown_values() {
        let json = r#"{"providers":["tensorrt","cuda","cpu"],"fallback":"next","max_batch":0,"max_delay_us":0,"trt_fp16":false,"serve":{"kind":"embeddings","function":"f"}}"#;
        let c: ModelConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            c.providers,
            [
                ExecutionProvider::Tensorrt,
                ExecutionProvider::Cuda,
                ExecutionProvider::Cpu
            ]
        );
        assert_eq!(c.fallback, Some(ProviderFallback::Next));
        assert_eq!(c.serve.as_ref().unwrap().kind, ServeKind::Embeddings);
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
        let c: ModelConfig = serde_json::from_str(
            r#"{"providers":["TRT"," Cuda "],"fallback":"refuse","serve":{"kind":"chat","function":"f"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.providers,
            [ExecutionProvider::Tensorrt, ExecutionProvider::Cuda]
        );
        assert_eq!(c.fallback, Some(ProviderFallback::Refuse));
        assert_eq!(c.serve.unwrap().kind, ServeKind::Chat);
        for (bad, says) in [
            (
                r#"{"providers":["quantum"]}"#,
                r#"unknown execution provider "quantum" (use tensorrt, cuda, cpu)"#,
            ),
            (
                r#"{"fallback":"later"}"#,
                r#"fallback "later" is not next or refuse"#,
            ),
            (
                r#"{"fallback":"Next"}"#,
                r#"fallback "Next" is not next or refuse"#,
            ),
            (
                r#"{"serve":{"kind":"rerank","function":"f"}}"#,
                r#"serve.kind "rerank" is not supported (embeddings, chat)"#,
            ),
        ] {
            let err = serde_json::from_str::<ModelConfig>(bad).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        assert_eq!(
            "cpu".parse::<ExecutionProvider>(),
            Ok(ExecutionProvider::Cpu)
        );
        assert_eq!(ServeKind::Chat.to_string(), "chat");
        assert_eq!(ProviderFallback::Refuse.as_str(), "refuse");
    }
}
