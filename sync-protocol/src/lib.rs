//! The Dangan sync protocol between a district edge node and the central
//! hub, in two versions ([`ProtocolVersion`]): `/sync/v1` (batches and the
//! dictionary feed) and `/sync/v2` (v1 plus the warehouse and loan-request
//! feeds). The hub serves both. `PROTOCOL.md` beside this crate documents
//! every exchange.
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

/// A version of the protocol: the path prefix its endpoints live under.
///
/// v2 is v1 plus the warehouse event feed and the loan-request feed; every
/// v1 exchange is the same under either prefix, and manifests and receipts
/// have one format in both. A hub serves both versions, so edges of the
/// previous release keep syncing batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// `/sync/v1`: enrolment, queue reports, offers, blobs, commits,
    /// batch listings and the dictionary feed.
    V1,
    /// `/sync/v2`: v1 plus `feeds/warehouse` and `feeds/loan-requests`.
    #[default]
    V2,
}

impl ProtocolVersion {
    /// Every version this crate speaks, oldest first.
    pub const ALL: [ProtocolVersion; 2] = [ProtocolVersion::V1, ProtocolVersion::V2];
    /// The version this crate's client speaks unless told otherwise.
    pub const CURRENT: ProtocolVersion = ProtocolVersion::V2;

    /// The path prefix of the version's endpoints, e.g. `/sync/v2`.
    pub const fn prefix(self) -> &'static str {
        match self {
            ProtocolVersion::V1 => "/sync/v1",
            ProtocolVersion::V2 => "/sync/v2",
        }
    }

    /// Whether the version has the warehouse and loan-request feeds.
    pub const fn has_warehouse_feeds(self) -> bool {
        matches!(self, ProtocolVersion::V2)
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V1 => "v1",
            ProtocolVersion::V2 => "v2",
        })
    }
}

/// The path prefix of the current version ([`ProtocolVersion::CURRENT`]);
/// the hub serves the older [`ProtocolVersion::V1`] prefix too.
pub const PROTOCOL_PREFIX: &str = ProtocolVersion::CURRENT.prefix();
