//! Fixture generators for Dangan's tests and benchmarks: synthetic scanned
//! pages with barcodes placed like real forms ([`pages`]) and the containers
//! scanner software writes them in ([`containers`]).
pub mod containers;
pub mod pages;
pub mod sets;
