//! Domain types shared by the Dangan edge node and the central hub.
//!
//! - [`BlobId`]: the BLAKE3 hash that addresses an image's bytes.
//! - [`OrgCode`]: the code of an organisation (city, district, street office).
//! - [`PersonId`]: an identity / social security number, checksum-validated.
//! - [`Category`], [`Retention`]: archive categories and retention periods.
//! - [`qc`]: QC sampling rules, reproducible samples, defect kinds.
//! - [`password`]: Argon2id hashes of people's passwords.
//! - [`template`]: business-type templates, validated the same at edge and hub.
//! - [`web`]: the stylesheet and viewer script both web UIs embed.
//! - [`dictionary`]: the common dictionaries (categories, retention periods,
//!   defect types) the hub publishes and every edge applies.
//! - [`imaging`] (feature `imaging`): decoding page images, browser views
//!   and thumbnails, for the edge node and the hub alike.
//! - [`pdf_font`] (feature `pdf`): the CJK font PDFs with Chinese text embed,
//!   read once and kept.
mod archive;
mod blob;
mod org;
mod person;

pub mod dictionary;
#[cfg(feature = "imaging")]
pub mod imaging;
pub mod password;
#[cfg(feature = "pdf")]
pub mod pdf_font;
pub mod qc;
pub mod template;
pub mod text;
pub mod web;

pub use archive::{Category, ParseCategoryError, ParseRetentionError, RETENTION_YEARS, Retention};
pub use blob::{BlobId, ParseBlobIdError};
pub use org::{OrgCode, OrgLevel, ParseOrgCodeError};
pub use person::{ParsePersonIdError, PersonId};
