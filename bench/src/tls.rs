//! `https://` endpoints (AWS, or any S3 behind TLS), behind the optional `tls` feature.
//!
//! Built with `--features tls`, connections to an `https://` endpoint go through rustls (ring
//! provider, HTTP/1.1 by ALPN) and trust the platform's root certificates, or the PEM file in
//! `SSL_CERT_FILE` / the directory in `SSL_CERT_DIR` (rustls-native-certs rules). Without the
//! feature an `https://` endpoint is refused up front, so the default build (what `run.sh` and
//! CI compile) needs no TLS stack.

pub use imp::{Tls, config, connect};

#[cfg(feature = "tls")]
mod imp {
    use std::sync::Arc;

    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

    /// Client TLS configuration shared by every connection.
    #[derive(Clone)]
    pub struct Tls(Arc<ClientConfig>);

    impl std::fmt::Debug for Tls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Tls(rustls)")
        }
    }

    /// Loads the root certificates and builds the client configuration.
    pub fn config() -> Result<Tls, String> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        for cert in loaded.certs {
            // Unparsable platform certificates are skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(format!(
                "no usable root certificate (set SSL_CERT_FILE); errors: {:?}",
                loaded.errors
            ));
        }
        // Explicit provider: the workspace may enable several rustls providers at once.
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS configuration: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(Arc::new(config)))
    }

    /// TLS handshake with `host` over an open TCP connection.
    pub async fn connect(
        tls: &Tls,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
        TlsConnector::from(tls.0.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))
    }
}

#[cfg(not(feature = "tls"))]
mod imp {
    use tokio::net::TcpStream;

    /// No TLS in this build: the type has no value.
    #[derive(Debug, Clone)]
    pub enum Tls {}

    /// Always refuses: TLS is not compiled in.
    pub fn config() -> Result<Tls, String> {
        Err(
            "https:// endpoints need s3bench built with `--features tls` \
             (cargo build --release --ignore-rust-version -p s3quorum-bench --features tls)"
                .to_string(),
        )
    }

    /// Unreachable: there is no [`Tls`] value to call it with.
    pub async fn connect(tls: &Tls, _host: &str, _tcp: TcpStream) -> Result<TcpStream, String> {
        match *tls {}
    }
}
