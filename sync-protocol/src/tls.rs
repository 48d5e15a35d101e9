//! Serving an axum app over plain HTTP or HTTPS (rustls), shared by the hub
//! and the edge node's web UI.
//!
//! - [`TlsFiles`]: the PEM certificate chain and private key to serve with.
//! - [`server_config`]: reads them into a [`rustls::ServerConfig`]
//!   (aws-lc-rs, safe default protocol versions, ALPN `http/1.1`).
//! - [`TlsListener`]: an [`axum::serve::Listener`] that accepts TCP
//!   connections and completes their TLS handshakes in background tasks,
//!   each bounded by [`HANDSHAKE_TIMEOUT`], so a slow or silent client never
//!   holds up the others.
//! - [`serve`]: one call for both: plain HTTP without [`TlsFiles`], HTTPS
//!   with them, and graceful shutdown either way.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// The rustls crate this module builds on, so callers need not depend on it
/// to name [`rustls::ServerConfig`].
pub use tokio_rustls::rustls;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Certificate chain and private key files (PEM) for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate.
    pub key: PathBuf,
}

/// Why [`TlsFiles`] do not make a server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is unreadable, not PEM, or holds nothing usable.
    #[error("cannot read TLS {what} from {path}: {message}")]
    File {
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// The file in question.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("the TLS certificate and key do not make a usable configuration: {0}")]
    Config(String),
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS files do not make a server configuration; nothing was served.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener or the server failed.
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads `files` into a rustls server configuration (no client
/// authentication, ALPN `http/1.1`).
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |what: &'static str, path: &Path, message: String| TlsError::File {
        what,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| file_error("certificate", &files.cert, err.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            "certificate",
            &files.cert,
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|err| file_error("private key", &files.key, err.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Config(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| TlsError::Config(err.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` on `listener` — over HTTPS with `tls`, plain HTTP without —
/// until `graceful` resolves, then waits for the connections still open to
/// finish. A caller that wants a deadline on that wait races this future
/// against its own timer.
///
/// With `tls`, the files are read before anything is served, so a bad
/// certificate or key fails at once with [`ServeError::Tls`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<&TlsFiles>,
    graceful: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Handlers may ask for the peer's address (`ConnectInfo<SocketAddr>`),
    // e.g. to record where a login came from.
    let app = app.into_make_service_with_connect_info::<PeerAddr>();
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
            .map_err(ServeError::from),
        Some(files) => {
            let listener = TlsListener::new(listener, Arc::new(server_config(files)?))?;
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
                .map_err(ServeError::from)
        }
    }
}

/// The address a request came from, for handlers that record it:
/// `ConnectInfo<PeerAddr>` works over plain HTTP and HTTPS alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// A connection whose TLS handshake is complete, and its peer.
type Accepted = (tokio_rustls::server::TlsStream<TcpStream>, SocketAddr);

/// Accepts TCP connections and completes their TLS handshakes in the
/// background, so a slow client never holds up the others. Handshakes that
/// fail or take longer than [`HANDSHAKE_TIMEOUT`] are dropped (logged at
/// debug level); [`axum::serve()`] only ever sees finished ones.
///
/// The accepting runs in a task spawned by [`TlsListener::new`] (so that
/// needs a Tokio runtime) and stops when the listener is dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<Accepted>,
    local_addr: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`. Fails only if the
    /// listener's local address cannot be read.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait, retry.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local_addr,
            acceptor_task,
        })
    }
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task only stops when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
