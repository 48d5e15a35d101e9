//! The hub's integration tests, one binary: `backend` (the storage
//! contract, HTTPS, the sync endpoints over a real socket) and `cli`.

mod backend;
mod cli;
