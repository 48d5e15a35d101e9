//! The hub's HTTP service: the `/sync/v1` protocol router over
//! [`HubBackend`], the admin API (`GET /api/v1/reconcile`, admin bearer
//! token) and `GET /healthz`, over plain HTTP or HTTPS (rustls), with
//! graceful shutdown and a periodic housekeeping task.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::backend::HubBackend;

/// Certificate chain and private key files (PEM) for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read TLS {what} from {path}: {message}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("the TLS certificate and key do not make a usable configuration: {0}")]
    TlsConfig(String),
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// The whole HTTP service of the hub.
pub fn app(backend: Arc<HubBackend>) -> Router {
    let limits = backend.config().limits.clone();
    let sync = dangan_sync::server::router(Arc::clone(&backend), limits);
    let admin = Router::new()
        .route("/api/v1/reconcile", get(reconcile))
        .route("/healthz", get(healthz))
        .with_state(backend);
    sync.merge(admin).layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
            .on_request(())
            .on_response(DefaultOnResponse::new().level(Level::DEBUG))
            .on_failure(DefaultOnFailure::new().level(Level::WARN)),
    )
}

/// Serves `backend` on `listener` until `shutdown` resolves, then finishes
/// the requests in progress. Partial uploads are expired periodically.
pub async fn serve(
    backend: Arc<HubBackend>,
    listener: TcpListener,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = app(Arc::clone(&backend));
    // The shutdown signal both starts the graceful stop and, GRACE later,
    // ends requests still running (a long upload keeps what it wrote).
    let (stopping, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });
    let graceful = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
    };
    let deadline = async move {
        let mut stop = stop;
        let _ = stop.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(GRACE).await;
    };
    let housekeeping = tokio::spawn(housekeeping(backend));
    let server = async {
        match tls {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
                .map_err(ServeError::from),
            Some(files) => {
                let acceptor = TlsAcceptor::from(Arc::new(server_config(&files)?));
                let listener = TlsListener::new(listener, acceptor)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .await
                    .map_err(ServeError::from)
            }
        }
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(grace_s = GRACE.as_secs(), "requests still running after the grace period; stopping anyway");
            Ok(())
        }
    };
    housekeeping.abort();
    served
}

/// Runs [`HubBackend::maintain`] now and then.
async fn housekeeping(backend: Arc<HubBackend>) {
    let every = (backend.config().partial_expiry / 4)
        .clamp(Duration::from_secs(30), Duration::from_secs(600));
    loop {
        if let Err(err) = backend.maintain().await {
            tracing::warn!(code = ?err.code, message = %err.message, "housekeeping failed");
        }
        tokio::time::sleep(every).await;
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Deserialize)]
struct ReconcileQuery {
    district: Option<String>,
}

/// Errors of the admin API, as `{"error": code, "message": text}`.
#[derive(Debug)]
enum AdminError {
    Unauthorized,
    BadRequest(String),
    Internal,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AdminError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin token is required (Authorization: Bearer TOKEN)".to_owned(),
            ),
            AdminError::BadRequest(message) => (StatusCode::BAD_REQUEST, "malformed", message),
            AdminError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_owned(),
            ),
        };
        let body = serde_json::json!({ "error": code, "message": message });
        (status, axum::Json(body)).into_response()
    }
}

async fn reconcile(
    State(backend): State<Arc<HubBackend>>,
    headers: HeaderMap,
    Query(query): Query<ReconcileQuery>,
) -> Result<Response, AdminError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(AdminError::Unauthorized)?;
    let admin = backend.is_admin(token.trim()).await.map_err(|err| {
        tracing::warn!(%err, "admin token check failed");
        AdminError::Internal
    })?;
    if !admin {
        return Err(AdminError::Unauthorized);
    }
    if let Some(district) = &query.district {
        district
            .parse::<dangan_shared::OrgCode>()
            .map_err(|err| AdminError::BadRequest(err.to_string()))?;
    }
    let report = backend.reconcile(query.district).await.map_err(|err| {
        tracing::warn!(%err, "reconciliation failed");
        AdminError::Internal
    })?;
    Ok(axum::Json(report).into_response())
}

fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |what: &'static str, path: &Path, message: String| ServeError::TlsFile {
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
        .map_err(|err| ServeError::TlsConfig(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| ServeError::TlsConfig(err.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How long requests in progress may run on after a shutdown signal.
const GRACE: Duration = Duration::from_secs(30);

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Accepts TCP connections and completes their TLS handshakes in the
/// background, so a slow client never holds up the others.
struct TlsListener {
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
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
