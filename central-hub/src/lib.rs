//! Dangan central hub: the archive that district edge nodes sync to.
//!
//! Module map:
//! - [`cli`]: the `dangan-hub` command line (`init`, `serve`, `node`, `org`, `reconcile`, `audit`).
//! - [`hub`]: a data folder (`hub.db`, `hub.key`, `hub.toml`, blobs, partials) and `init`.
//! - [`config`]: `hub.toml`, raw and validated.
//! - [`store`]: the SQLite index: schema, migrations, connection pool.
//! - [`orgs`]: organisations (机构管理), the city → district → street office tree.
//! - [`users`]: hub users, roles, sessions, lockout, grants and the scope they give.
//! - [`nodes`]: districts, nodes, enrolment codes and admin tokens (hashed).
//! - [`archive`]: offers, blobs present, committed batches and edge reports in the index.
//! - [`blobs`]: complete blobs in the object store and partial uploads.
//! - [`backend`]: [`backend::HubBackend`], the storage behind the sync router (`/sync/v1` and `/sync/v2`).
//! - [`warehouse`]: the districts' warehouses of paper originals from the edges' warehouse feeds, where a file's original is, and loan requests.
//! - [`audit`]: the tamper-evident audit trail: hash-chained entries, signed checkpoints, verification, CSV.
//! - [`renditions`]: browser views and thumbnails of page blobs, made on demand and kept under `derived/`.
//! - [`pdf`]: a business file as one PDF, watermarked on every page (krilla, a subset CJK font).
//! - [`reconcile`]: per district, what is queued, in flight, archived or divergent.
//! - [`search`]: business files by person, name (bigram index), number, organisation, dates; scoped.
//! - [`api`]: the JSON API under `/api/v1` (reconciliation, organisations, search, files, page images, PDFs), its OpenAPI document.
//! - [`http`]: the HTTP(S) service: sync router, admin API, health check.
//! - [`text`]: operator-facing text in Chinese and English.
pub mod api;
pub mod archive;
pub mod audit;
pub mod backend;
pub mod blobs;
pub mod cli;
pub mod close;
pub mod config;
pub mod dictionaries;
pub mod http;
pub mod hub;
pub mod landing;
pub mod live;
pub mod nodes;
pub mod orgs;
pub mod pdf;
pub mod reconcile;
pub mod renditions;
pub mod search;
pub mod store;
pub mod text;
pub mod users;
pub mod warehouse;
pub mod web;
pub mod webhooks;

pub use backend::HubBackend;
