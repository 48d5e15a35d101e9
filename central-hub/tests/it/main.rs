//! The hub's integration tests, one binary: `backend` (the storage
//! contract, HTTPS, the sync endpoints over a real socket), `cli` and
//! `audit` (the audit trail through the binary), `dictionaries` (the
//! common dictionaries and templates through the API), `pages` (page
//! images, renditions and the watermarked PDF of an archived file),
//! `search` (search through the API, scoped and audited), `tus` (street
//! offices' live uploads over tus, raw HTTP), `warehouse` (the sync v2
//! warehouse and loan-request feeds, a file's original, v1 edges).

mod accounts;
mod audit;
mod backend;
mod cli;
mod dictionaries;
mod pages;
mod search;
mod tus;
mod warehouse;
