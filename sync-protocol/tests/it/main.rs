//! The protocol crate's integration tests, one binary: `round_trip` (both
//! halves over a real socket) and `tls` (HTTPS serving).

mod round_trip;
mod tls;
