//! HTTPS for `waihu serve`: rustls over the axum server, certificates from
//! PEM files reloaded when they change (a renewed certificate is picked up
//! without a restart; a broken renewal is logged and the old one kept), or a
//! self-signed certificate made once in the data directory for local use.
//!
//! TLS handshakes run in their own tasks, so a slow or silent client never
//! holds up the accept loop; finished handshakes are handed to axum through
//! [`TlsListener`].
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

fn file_err(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key from PEM files, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("reading certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no CERTIFICATE block found"));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        file_err(
            key,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })?;
    let ck = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        file_err(
            key,
            format!("does not fit the certificate {}: {e}", cert.display()),
        )
    })?;
    Ok(ck)
}

/// SHA-256 of the leaf certificate, as colon-separated hex (what browsers show).
pub fn fingerprint(ck: &CertifiedKey) -> String {
    let d = Sha256::digest(ck.cert.first().map(|c| c.as_ref()).unwrap_or_default());
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate in use, swapped when its files change.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Where the certificate comes from and how to serve it.
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Reloading>,
    files: (PathBuf, PathBuf),
    /// Printed at start-up.
    pub fingerprint: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.files.0)
            .field("key", &self.files.1)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Tls {
    /// Serve the certificate chain and key in these PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let ck = load_certified_key(cert, key)?;
        let fingerprint = fingerprint(&ck);
        let resolver = Arc::new(Reloading {
            current: RwLock::new(Arc::new(ck)),
        });
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
            resolver,
            files: (cert.to_path_buf(), key.to_path_buf()),
            fingerprint,
        })
    }

    /// A self-signed certificate for `localhost`, 127.0.0.1 and ::1, made on
    /// first use under `dir` (`tls/cert.pem`, `tls/key.pem`, key readable by
    /// the owner only) and reused after.
    pub fn self_signed(dir: &Path) -> Result<Tls, TlsError> {
        let tls_dir = dir.join("tls");
        let (cert, key) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
        if !(cert.exists() && key.exists()) {
            std::fs::create_dir_all(&tls_dir).map_err(|e| file_err(&tls_dir, e))?;
            let names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            let made = rcgen::generate_simple_self_signed(names)
                .map_err(|e| TlsError::Setup(format!("making a certificate: {e}")))?;
            write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
            std::fs::write(&cert, made.cert.pem()).map_err(|e| file_err(&cert, e))?;
        }
        Tls::from_files(&cert, &key)
    }

    /// Re-read the files when their modification time changes (checked every
    /// `every`). A pair that fails to load is logged and the old one kept.
    pub fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let resolver = self.resolver.clone();
        let (cert, key) = self.files.clone();
        tokio::spawn(async move {
            let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut seen: (Option<SystemTime>, Option<SystemTime>) = (stamp(&cert), stamp(&key));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = (stamp(&cert), stamp(&key));
                if now == seen {
                    continue;
                }
                seen = now;
                match load_certified_key(&cert, &key) {
                    Ok(ck) => {
                        tracing::info!(fingerprint = %fingerprint(&ck), "TLS certificate reloaded");
                        if let Ok(mut cur) = resolver.current.write() {
                            *cur = Arc::new(ck);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate not reloaded; keeping the old one")
                    }
                }
            }
        })
    }

    /// The fingerprint of the certificate currently served.
    pub fn current_fingerprint(&self) -> String {
        self.resolver
            .current
            .read()
            .map(|c| fingerprint(&c))
            .unwrap_or_default()
    }

    /// Accept TCP connections on `tcp` and hand over those whose TLS
    /// handshake completed within 10 s.
    pub fn listen(&self, tcp: TcpListener) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(256);
        let acceptor = self.acceptor.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            _task: AbortOnDrop(task),
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connections whose TLS handshake has completed, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _task: AbortOnDrop,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
