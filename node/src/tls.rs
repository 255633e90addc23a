//! Server-side TLS from PEM files (`--tls-cert`, `--tls-key`), reloaded from the same files
//! on SIGHUP: a node's listener and the gateway's S3 and admin listeners all use it.
//!
//! Invariant: a reload that fails (unreadable files, a key that does not fit the
//! certificate) leaves the configuration in force and logs why; connections already open
//! keep the certificate they were made with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS settings both listeners share; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

/// A rustls server configuration from PEM files.
fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Tls {
    /// Loads the certificate chain and key; fails when they cannot serve.
    pub fn new(cert: &Path, key: &Path) -> Result<Tls, String> {
        let config = load(cert, key)?;
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// The acceptor for the next connection, with the configuration in force. Never
    /// absent: a listener configured for TLS must not fall back to plain HTTP, and the
    /// lock only guards a pointer swap, so a poisoned one still holds a whole config.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        TlsAcceptor::from(config)
    }

    /// Reads the files again; keeps the old configuration when they do not load.
    pub fn reload(&self) {
        match load(&self.cert, &self.key) {
            Ok(config) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::error!("TLS certificate not reloaded, the old one stays: {e}"),
        }
    }

    /// Reloads on every SIGHUP for as long as the process runs.
    pub fn reload_on_sighup(&self) {
        #[cfg(unix)]
        {
            let tls = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::warn!("SIGHUP cannot be caught: TLS reload by signal is off");
                    return;
                };
                while hup.recv().await.is_some() {
                    tls.reload();
                }
            });
        }
    }
}
