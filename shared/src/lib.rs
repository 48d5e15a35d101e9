//! Domain types shared by the Dangan edge node and the central hub.
//!
//! - [`BlobId`]: the BLAKE3 hash that addresses an image's bytes.
//! - [`OrgCode`]: the code of an organisation (city, district, street office).
mod blob;
mod org;

pub mod text;

pub use blob::{BlobId, ParseBlobIdError};
pub use org::{OrgCode, OrgLevel, ParseOrgCodeError};
