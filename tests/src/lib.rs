//! Fixture generators for Dangan's tests and benchmarks: synthetic scanned
//! pages with barcodes placed like real forms ([`pages`]) and the containers
//! scanner software writes them in ([`containers`]); a misbehaving HTTP
//! proxy for fault-injection tests ([`faultproxy`]); real hub and edge
//! processes for end-to-end tests ([`procs`]); browser scenarios in headless
//! Chromium ([`browser`]).
pub mod browser;
pub mod containers;
pub mod faultproxy;
pub mod pages;
pub mod procs;
pub mod sets;
