//! Dangan edge node: the district's pre-archive.
//!
//! Module map:
//! - [`node`]: a data folder (database, cache, quarantine, `edge.toml`) and its write lock.
//! - [`config`]: `edge.toml`, raw and validated.
//! - [`store`]: the SQLite pre-archive: batches, business files, pages, sources, exceptions.
//! - [`cache`]: the content-addressed image cache with durable writes.
//! - [`ingest`]: the pipeline from source files to recorded pages, in parallel, in order.
//! - [`decode`]: reads a source file (JPEG, PNG, TIFF, PDF) into page frames,
//!   refusing bad input with a reason (in `dangan_shared::imaging`, which the
//!   hub uses too).
//! - [`raster`]: a page's pixels at full and reduced resolution.
//! - [`barcode`]: finds barcodes on a page (rxing).
//! - [`binarize`]: a faster, bit-identical version of rxing's local binariser.
//! - [`analyze`]: blank check, thumbnail and blob storage for one page.
//! - [`skew`]: estimates a page's skew angle (QC pre-check).
//! - [`grouping`]: which business file a page belongs to, from its barcodes.
//! - [`watch`]: the hot folder and the SANE scanner source.
//! - [`fsck`]: checks the cache against the database.
//! - [`sync`]: enrolment with the hub, the sync queue, manifests, sync
//!   windows and the sync pass over `/sync/v1`.
//! - [`eviction`]: keeps the image cache within its budget (archived batches only).
//! - [`template`]: business-type templates (category, retention, required
//!   documents and metadata, barcode rules, scan minimums, QC rule), versioned.
//! - [`labels`]: printable sheets of box, volume and shelf labels (Code 128
//!   and Chinese text) as PDF.
//! - [`lifecycle`]: the batch states and who may move a batch between them.
//! - [`index`]: indexing (著录) from the business system's export.
//! - [`users`]: operators, inspectors and edge admins; Argon2id passwords.
//! - [`qc`]: QC rounds: reproducible samples, verdicts, outcome, report.
//! - [`files`]: operators' edits of business files: grouping, metadata, document checklist.
//! - [`exceptions`]: the exception queue of a batch (recorded and derived), and resolutions.
//! - [`rescan`]: replacing a page's image in rework, with the page's history.
//! - [`api`]: the JSON API under `/api/v1` (sessions, every workflow step).
//! - [`text`]: operator-facing words in Simplified Chinese and English.
//! - [`web`]: the archive room's web UI beside the API, with the CSRF guard.
pub mod analyze;
pub mod api;
pub mod barcode;
pub mod binarize;
pub mod cache;
pub mod config;
pub mod dictionaries;
pub mod eviction;
pub mod exceptions;
pub mod files;
pub mod fsck;
pub mod grouping;
pub mod index;
pub mod ingest;
pub mod labels;
pub mod lifecycle;
pub mod node;
pub mod qc;
pub mod raster;
pub mod rescan;
pub mod skew;
pub mod store;
pub mod sync;
pub mod template;
pub mod text;
pub mod users;
pub mod warehouse;
pub mod watch;

/// Decoding lives in [`dangan_shared::imaging`], shared with the hub.
pub use dangan_shared::imaging::decode;
pub mod web;
