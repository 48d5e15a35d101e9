//! `dangan_sync::tls` on a real socket: a tiny router served over HTTPS with
//! the test CA's certificate (`tests/fixtures/`) and over plain HTTP, fetched
//! with reqwest; and the errors bad TLS files give.
// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use dangan_sync::tls::{ServeError, TlsError, TlsFiles, serve, server_config};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_files() -> TlsFiles {
    TlsFiles {
        cert: fixture("hub.pem"),
        key: fixture("hub.key.pem"),
    }
}

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello\n" }))
}

/// Serves [`app`] on a free local port; returns the port, the stop switch
/// and the server task.
async fn start(
    tls: Option<TlsFiles>,
) -> (u16, oneshot::Sender<()>, JoinHandle<Result<(), ServeError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, app(), tls.as_ref(), async {
            let _ = stopped.await;
        })
        .await
    });
    (port, stop, server)
}

fn trusting_client() -> reqwest::Client {
    let ca = std::fs::read(fixture("ca.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_serves_a_router_and_stops_gracefully() {
    let (port, stop, server) = start(Some(fixture_files())).await;
    // A client that connects and never says a word must not hold up others:
    // handshakes complete in the background.
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();

    let client = trusting_client();
    let answer = client
        .get(format!("https://localhost:{port}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello\n");

    // A client that does not trust the test CA gets nowhere.
    let stranger = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let refused = stranger
        .get(format!("https://localhost:{port}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    // Graceful shutdown waits for open connections: close the clients'.
    drop((client, stranger, silent));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops after the signal")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn plain_http_without_tls_files() {
    let (port, stop, server) = start(None).await;
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("http://127.0.0.1:{port}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello\n");
    drop(client);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops after the signal")
        .unwrap()
        .unwrap();
}

#[test]
fn the_fixtures_make_a_configuration_offering_http1() {
    let config = server_config(&fixture_files()).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
}

#[test]
fn a_missing_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-key.pem");
    let files = TlsFiles {
        cert: fixture("hub.pem"),
        key: missing.clone(),
    };
    let err = server_config(&files).unwrap_err();
    match &err {
        TlsError::File { what, path, .. } => {
            assert_eq!(*what, "private key");
            assert_eq!(path, &missing);
        }
        other => panic!("expected TlsError::File, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_certificate_file_without_certificates_is_named() {
    // The key file is PEM, but holds no certificate.
    let files = TlsFiles {
        cert: fixture("hub.key.pem"),
        key: fixture("hub.key.pem"),
    };
    match server_config(&files).unwrap_err() {
        TlsError::File {
            what,
            path,
            message,
        } => {
            assert_eq!(what, "certificate");
            assert_eq!(path, fixture("hub.key.pem"));
            assert!(message.contains("no certificate"), "{message}");
        }
        other => panic!("expected TlsError::File, got {other:?}"),
    }
}

#[test]
fn a_key_not_matching_the_certificate_is_refused() {
    // The CA's certificate with the leaf's key.
    let files = TlsFiles {
        cert: fixture("ca.pem"),
        key: fixture("hub.key.pem"),
    };
    let err = server_config(&files).unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn serve_fails_at_once_on_a_bad_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-key.pem");
    let files = TlsFiles {
        cert: fixture("hub.pem"),
        key: missing.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = tokio::time::timeout(
        Duration::from_secs(10),
        serve(listener, app(), Some(&files), std::future::pending()),
    )
    .await
    .expect("serve returns without serving");
    match served {
        Err(ServeError::Tls(TlsError::File { path, .. })) => assert_eq!(path, missing),
        other => panic!("expected ServeError::Tls(TlsError::File), got {other:?}"),
    }
}
