//! The edge's half of the protocol: a typed HTTP client for `/sync/v1`.
//!
//! It speaks the protocol and nothing else: which batches to offer, when,
//! and how often to retry are the edge's policy.
