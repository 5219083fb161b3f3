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
    client_ca: Option<PathBuf>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
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
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // Mutual TLS: client certificates are asked for and verified against `client_ca`,
    // but optional at the TLS layer; the api decides which routes need one.
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_err = |message: String| TlsError::Cert {
                path: ca.display().to_string(),
                message,
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| ca_err(e.to_string()))? {
                roots
                    .add(c.map_err(|e| ca_err(e.to_string()))?)
                    .map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("no CA certificate in the file".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ca_err(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit together: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl ReloadingTls {
    /// Load the files now (errors are start-up errors).
    pub fn new(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<Self>, TlsError> {
        let cfg = load(cert, key, client_ca)?;
        Ok(Arc::new(ReloadingTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: client_ca.map(Path::to_path_buf),
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
        match load(&self.cert, &self.key, self.client_ca.as_deref()) {
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
