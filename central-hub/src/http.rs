//! The hub's HTTP service: the `/sync/v1` protocol router over
//! [`HubBackend`], the admin API under `/api/v1` ([`crate::api`]) and
//! `GET /healthz`, over plain HTTP or HTTPS
//! ([`dangan_sync::tls`]), with graceful shutdown and a periodic
//! housekeeping task.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::audit;
use crate::backend::HubBackend;

/// The TLS files and serving errors are `dangan_sync::tls`'s, shared with
/// the edge node.
pub use dangan_sync::tls::{ServeError, TlsError, TlsFiles};

/// The whole HTTP service of the hub. `secure_cookies`: it is reached over
/// HTTPS, so the API's session cookie is marked `Secure`.
pub fn app(backend: Arc<HubBackend>, secure_cookies: bool) -> Router {
    let limits = backend.config().limits.clone();
    let sync = dangan_sync::server::router(Arc::clone(&backend), limits);
    let admin = crate::api::router(Arc::clone(&backend), secure_cookies)
        .merge(crate::web::router(backend, secure_cookies))
        .route("/healthz", get(healthz));
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
    let app = app(Arc::clone(&backend), tls.is_some());
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
    let server = dangan_sync::tls::serve(listener, app, tls.as_ref(), graceful);
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

/// Runs [`HubBackend::maintain`] now and then, and checkpoints the audit
/// trail: at start and whenever the last checkpoint is older than
/// [`audit::CHECKPOINT_EVERY`] (less one [`AUDIT_TICK`], so that a moved
/// head never waits longer than that).
async fn housekeeping(backend: Arc<HubBackend>) {
    let every = (backend.config().partial_expiry / 4)
        .clamp(Duration::from_secs(30), Duration::from_secs(600));
    let maintain = async {
        loop {
            if let Err(err) = backend.maintain().await {
                tracing::warn!(code = ?err.code, message = %err.message, "housekeeping failed");
            }
            tokio::time::sleep(every).await;
        }
    };
    let checkpoints = async {
        let max_age = audit::CHECKPOINT_EVERY.saturating_sub(AUDIT_TICK);
        loop {
            match backend.audit_checkpoint_if_due(max_age).await {
                Ok(Some(audit::CheckpointOutcome::Written(cp))) => {
                    tracing::info!(seq = cp.seq, "audit checkpoint written");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "audit checkpoint failed"),
            }
            tokio::time::sleep(AUDIT_TICK).await;
        }
    };
    let webhooks = async {
        let Some(config) = backend.config().webhooks.clone() else {
            return;
        };
        let secret = match crate::webhooks::secret(&config.secret_file) {
            Ok(secret) => secret,
            Err(err) => {
                tracing::error!(%err, path = %config.secret_file.display(),
                    "cannot read or make the webhook secret; no webhook events are sent");
                return;
            }
        };
        let target = crate::webhooks::Target {
            url: config.url,
            secret,
            max_attempts: config.max_attempts,
        };
        let client = reqwest::Client::new();
        loop {
            if let Err(err) = crate::webhooks::deliver_due(backend.db(), &client, &target).await {
                tracing::warn!(%err, "webhook delivery round failed");
            }
            tokio::time::sleep(WEBHOOK_TICK).await;
        }
    };
    tokio::join!(maintain, checkpoints, webhooks);
}

/// How often due webhook events are looked for.
const WEBHOOK_TICK: Duration = Duration::from_secs(1);

/// How often housekeeping looks whether an audit checkpoint is due.
const AUDIT_TICK: Duration = Duration::from_secs(60);

async fn healthz() -> &'static str {
    "ok\n"
}

/// How long requests in progress may run on after a shutdown signal.
const GRACE: Duration = Duration::from_secs(30);
