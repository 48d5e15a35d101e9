//! The Dangan sync protocol (`/sync/v1`) between a district edge node and the
//! central hub.
//!
//! This crate is intentionally thin until the sync issue lands: it only fixes
//! the protocol's version path so that both sides agree on it.

/// The path prefix every sync endpoint lives under.
pub const PROTOCOL_PREFIX: &str = "/sync/v1";
