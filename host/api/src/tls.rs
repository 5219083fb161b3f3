//! HTTPS: rustls server configuration from PEM files, ALPN `h2` + `http/1.1`, reloaded
//! when the files change (certificate rotation without a restart).

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Cert { path: String, message: String },
    #[error("TLS key {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The current server configuration, swapped when the files change.
pub struct ReloadingTls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<ServerConfig>, Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: cert.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit together: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl ReloadingTls {
    /// Load the files now (errors are start-up errors).
    pub fn new(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let cfg = load(cert, key)?;
        Ok(Arc::new(ReloadingTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((cfg, mtime(cert), mtime(key))),
        }))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let g = self.current.read().unwrap_or_else(|p| p.into_inner());
        tokio_rustls::TlsAcceptor::from(g.0.clone())
    }

    /// Reload if either file changed. A bad new pair is logged and the old one kept.
    pub fn reload_if_changed(&self) {
        let (c, k) = (mtime(&self.cert), mtime(&self.key));
        {
            let g = self.current.read().unwrap_or_else(|p| p.into_inner());
            if g.1 == c && g.2 == k {
                return;
            }
        }
        match load(&self.cert, &self.key) {
            Ok(cfg) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (cfg, c, k);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Keep serving with the old pair; retry on the next change.
                let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
                g.1 = c;
                g.2 = k;
                tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate");
            }
        }
    }

    /// Poll the files every `every` until the process ends.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                this.reload_if_changed();
            }
        });
    }
}
