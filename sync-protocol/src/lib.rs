//! The Dangan sync protocol (`/sync/v1`) between a district edge node and the
//! central hub. `PROTOCOL.md` beside this crate documents every exchange.
//!
//! - [`wire`]: every JSON body and header-carried state of the protocol.
//! - [`jcs`]: RFC 8785 canonical JSON, which manifests and receipts are
//!   hashed and signed in.
//! - [`manifest`]: the manifest hash ([`manifest_hash`]) and the consistency
//!   checks both sides run ([`validate_manifest`]).
//! - [`receipt`]: the hub's Ed25519 key, signed receipts, and the random
//!   credentials both sides need.
//! - [`server`]: the hub's half, an axum router over a storage [`server::Backend`].
//! - [`client`]: the edge's half, a typed [`client::Client`].
//! - [`session`]: browser sessions for the edge's UI and the hub's API:
//!   cookies, CSRF tokens and the CSRF guard.
//! - [`tls`]: serving an axum app over HTTP or HTTPS (rustls) with graceful
//!   shutdown, for the hub and the edge's web UI alike.
pub mod client;
pub mod jcs;
pub mod manifest;
pub mod receipt;
pub mod server;
pub mod session;
pub mod tls;
pub mod wire;

pub use manifest::{manifest_hash, validate_manifest};
pub use receipt::{HubKey, random_token, sign_receipt, token_hash, verify_receipt};

/// The path prefix every sync endpoint lives under.
pub const PROTOCOL_PREFIX: &str = "/sync/v1";
