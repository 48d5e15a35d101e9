//! The Dangan sync protocol (`/sync/v1`) between a district edge node and the
//! central hub: wire types ([`wire`]), the canonical encoding and hashes
//! ([`jcs`], [`manifest_hash`]), signed receipts, the hub's half as an axum
//! router over a storage [`server::Backend`], and the edge's half as a typed
//! [`client::Client`]. `PROTOCOL.md` beside this crate documents every
//! exchange.
pub mod client;
pub mod server;
pub mod wire;

/// The path prefix every sync endpoint lives under.
pub const PROTOCOL_PREFIX: &str = "/sync/v1";
