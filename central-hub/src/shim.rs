//! TEMPORARY stand-ins for functions that `dangan-sync` will export once the
//! protocol crate lands. Same names and signatures as there; delete this
//! module at merge time and import them from `dangan_sync` instead.
//!
//! Deliberately minimal: `to_canonical` is serde_json's compact output (the
//! wire structs are declared in sorted key order, so it matches RFC 8785 for
//! them), and `validate_manifest` accepts everything (the real router
//! validates before the backend sees a manifest).
use dangan_sync::wire::{Manifest, Receipt, ReceiptBody};
use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;

/// The canonical (RFC 8785) encoding of `value`.
pub fn to_canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|err| err.to_string())
}

/// A manifest's canonical bytes and their BLAKE3 hash (lowercase hex).
pub fn manifest_hash(manifest: &Manifest) -> Result<(Vec<u8>, String), String> {
    let bytes = to_canonical(manifest)?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    Ok((bytes, hash))
}

/// Checks a manifest's format and internal consistency. (Shim: accepts all.)
pub fn validate_manifest(_manifest: &Manifest) -> Result<(), String> {
    Ok(())
}

/// The hub's Ed25519 signing key.
pub struct HubKey(SigningKey);

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubKey({})", self.public_hex())
    }
}

impl HubKey {
    pub fn generate() -> HubKey {
        let mut secret = [0u8; 32];
        // The OS random source failing is not recoverable.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut secret).expect("the operating system's random source failed");
        HubKey::from_bytes(&secret)
    }

    pub fn from_bytes(secret: &[u8; 32]) -> HubKey {
        HubKey(SigningKey::from_bytes(secret))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key, 64 lowercase hex digits.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }
}

/// Signs `body`'s canonical encoding.
pub fn sign_receipt(key: &HubKey, body: ReceiptBody) -> Receipt {
    // A receipt body is strings and integers only; encoding it cannot fail.
    let bytes = to_canonical(&body).unwrap_or_default();
    let signature = hex(&key.0.sign(&bytes).to_bytes());
    Receipt { body, signature }
}

/// `prefix` followed by 64 hex digits of fresh randomness.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not recoverable.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{prefix}{}", hex(&bytes))
}

/// The BLAKE3 hash of a token, as stored.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
