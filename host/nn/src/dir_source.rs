//! Models from a directory (`{dir}/{name}.onnx`): the model source when HelixFlow runs
//! inside AWS Lambda (`helixflow lambda`), where models ship in the deployment package
//! or a layer next to the component. There is one tenant there, so names are plain.

use crate::{Batching, ErrorCode, ModelSource, ModelSpec, NnError};
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct DirModels {
    dir: PathBuf,
    /// SHA-256 -> file, for `fetch`.
    files: Mutex<HashMap<String, PathBuf>>,
}

impl DirModels {
    pub fn new(dir: impl Into<PathBuf>) -> DirModels {
        DirModels {
            dir: dir.into(),
            files: Mutex::default(),
        }
    }
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.contains("..")
}

/// Reads a model file; errors name the model, never the host's paths.
async fn read(path: PathBuf, name: &str) -> Result<Vec<u8>, NnError> {
    let p = path.clone();
    match tokio::task::spawn_blocking(move || std::fs::read(&p)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(NnError::new(
            ErrorCode::NotFound,
            format!("no model {name:?} in this package"),
        )),
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "model file unreadable");
            Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("model {name:?} could not be read"),
            ))
        }
        Err(e) => Err(NnError::new(ErrorCode::RuntimeError, e.to_string())),
    }
}

#[async_trait::async_trait]
impl ModelSource for DirModels {
    async fn resolve(&self, _tenant: &str, name: &str) -> Result<ModelSpec, NnError> {
        if !valid(name) {
            return Err(NnError::new(
                ErrorCode::NotFound,
                format!("no model {name:?} (names: letters, digits, '-', '_', '.')"),
            ));
        }
        let path = self.dir.join(format!("{name}.onnx"));
        let bytes = read(path.clone(), name).await?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.clone(), path);
        Ok(ModelSpec {
            display: name.to_string(),
            sha256,
            providers: Vec::new(),
            fallback: None,
            batching: Batching::default(),
            trt_fp16: false,
        })
    }

    async fn fetch(&self, spec: &ModelSpec) -> Result<Vec<u8>, NnError> {
        let path = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&spec.sha256)
            .cloned()
            .ok_or_else(|| {
                NnError::new(
                    ErrorCode::NotFound,
                    format!("model {} was not resolved here", spec.display),
                )
            })?;
        let bytes = read(path, &spec.display).await?;
        if hex::encode(sha2::Sha256::digest(&bytes)) != spec.sha256 {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("model {} changed on disk", spec.display),
            ));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_files_by_name_and_refuses_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.onnx"), b"model bytes").unwrap();
        let src = DirModels::new(dir.path());
        let spec = src.resolve("", "m").await.unwrap();
        assert_eq!(src.fetch(&spec).await.unwrap(), b"model bytes");
        for bad in ["../m", "a/b", "", ".hidden", "m@2"] {
            assert!(src.resolve("", bad).await.is_err(), "{bad}");
        }
        assert_eq!(
            src.resolve("", "nope").await.unwrap_err().code,
            ErrorCode::NotFound
        );
        std::fs::write(dir.path().join("m.onnx"), b"changed").unwrap();
        assert!(
            src.fetch(&spec).await.is_err(),
            "a model that changed after resolve is refused"
        );
    }
}
