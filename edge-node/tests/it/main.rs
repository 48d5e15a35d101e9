//! The edge's integration tests, one binary (one link) for all: each module
//! runs the real `dangan-edge` binary on generated inputs.
//!
//! - `api`: the JSON API over real HTTP; `web`: the web UI's cookie and CSRF
//!   rules and the browser test (tests/browser/edge.mjs in headless Chromium).
//! - `ingest`, `crash`, `watch`, `rescan`, `workflow`: the CLI's ingest,
//!   kill -9 recovery, hot folder and scanner, rework and the archive
//!   room's workflow.
//! - `warehouse`: locations, shelving, volumes, labels and loans over the
//!   API, and the keyboard-wedge screens in Chromium (warehouse.mjs).

mod common;

mod api;
mod crash;
mod ingest;
mod rescan;
mod warehouse;
mod watch;
mod web;
mod workflow;
