//! Signed receipts and the random credentials of the protocol.
//!
//! The hub signs each receipt body's canonical encoding (RFC 8785) with its
//! Ed25519 key; the edge learns the public key at enrolment and keeps the
//! receipt as proof of exactly what the hub archived.
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::jcs::{self, JcsError};
use crate::wire::{RECEIPT_FORMAT, Receipt, ReceiptBody};

/// The operating system's random source failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the system random source failed: {0}")]
pub struct RandomError(String);

/// Why a receipt does not prove what the edge needs it to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt format is {found:?}, expected {RECEIPT_FORMAT:?}")]
    Format { found: String },
    #[error("receipt names manifest {found}, expected {expected}")]
    ManifestHash { expected: String, found: String },
    #[error("hub key is not an Ed25519 public key in 64 lowercase hex digits: {0}")]
    HubKey(String),
    #[error("signature is not 128 lowercase hex digits")]
    SignatureEncoding,
    #[error("signature does not verify with the hub's key")]
    BadSignature,
    #[error("receipt body has no canonical encoding: {0}")]
    Encoding(#[from] JcsError),
}

/// The hub's Ed25519 signing key.
///
/// Its 32 secret bytes ([`HubKey::to_bytes`]) belong in a file only the hub
/// can read (mode 0600); `Debug` prints only the public half.
#[derive(Clone)]
pub struct HubKey(SigningKey);

impl HubKey {
    /// A new key from the system's random source.
    pub fn generate() -> Result<Self, RandomError> {
        let mut secret = [0_u8; 32];
        getrandom::fill(&mut secret).map_err(|error| RandomError(error.to_string()))?;
        Ok(Self::from_bytes(&secret))
    }

    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key as 64 lowercase hex digits, as enrolment hands it out.
    pub fn public_hex(&self) -> String {
        to_hex(self.0.verifying_key().as_bytes())
    }

    fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}

impl fmt::Debug for HubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubKey(public {})", self.public_hex())
    }
}

/// Signs `body`: the signature is Ed25519 over `jcs::to_canonical(&body)`,
/// as 128 lowercase hex digits.
///
/// Fails only if the body has no canonical encoding (a count beyond 2^53).
pub fn sign_receipt(key: &HubKey, body: ReceiptBody) -> Result<Receipt, JcsError> {
    let message = jcs::to_canonical(&body)?;
    let signature = to_hex(&key.sign(&message).to_bytes());
    Ok(Receipt { body, signature })
}

/// Checks that `receipt` is a receipt of this protocol version, for the
/// manifest the edge offered, signed by the hub whose public key (64 hex
/// digits) the edge received at enrolment.
pub fn verify_receipt(
    receipt: &Receipt,
    hub_key_hex: &str,
    expected_manifest_hash: &str,
) -> Result<(), ReceiptError> {
    if receipt.body.format != RECEIPT_FORMAT {
        return Err(ReceiptError::Format {
            found: receipt.body.format.clone(),
        });
    }
    if receipt.body.manifest_hash != expected_manifest_hash {
        return Err(ReceiptError::ManifestHash {
            expected: expected_manifest_hash.to_owned(),
            found: receipt.body.manifest_hash.clone(),
        });
    }
    let key_bytes: [u8; 32] = from_hex(hub_key_hex)
        .ok_or_else(|| ReceiptError::HubKey("not 64 lowercase hex digits".to_owned()))?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|error| ReceiptError::HubKey(error.to_string()))?;
    let signature_bytes: [u8; 64] =
        from_hex(&receipt.signature).ok_or(ReceiptError::SignatureEncoding)?;
    let signature = Signature::from_bytes(&signature_bytes);
    let message = jcs::to_canonical(&receipt.body)?;
    key.verify_strict(&message, &signature)
        .map_err(|_| ReceiptError::BadSignature)
}

/// A new random credential: `prefix` followed by 32 random bytes as 64
/// lowercase hex digits (URL- and header-safe), e.g. `dn_5f0c...`.
pub fn random_token(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| RandomError(error.to_string()))?;
    Ok(format!("{prefix}{}", to_hex(&bytes)))
}

/// What the hub stores instead of a credential: the BLAKE3 of the token's
/// UTF-8 bytes, as 64 lowercase hex digits.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Decodes exactly `N` bytes from `2N` lowercase hex digits.
fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return None;
    }
    let mut bytes = [0_u8; N];
    for (index, pair) in text.chunks_exact(2).enumerate() {
        bytes[index] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::is_hash_hex;

    fn body() -> ReceiptBody {
        ReceiptBody {
            batch: "310104-2024-0001".to_owned(),
            blobs: 3,
            bytes: 368_333,
            committed_at: "2024-05-07T01:02:03Z".to_owned(),
            district: "310104".to_owned(),
            format: RECEIPT_FORMAT.to_owned(),
            hub_id: "hub-城市".to_owned(),
            manifest_hash: "ab".repeat(32),
            node_id: "node-310104".to_owned(),
            pages: 3,
        }
    }

    #[test]
    fn a_signed_receipt_verifies() {
        let key = HubKey::generate().unwrap();
        let receipt = sign_receipt(&key, body()).unwrap();
        assert_eq!(receipt.signature.len(), 128);
        verify_receipt(&receipt, &key.public_hex(), &"ab".repeat(32)).unwrap();
        // Signing is deterministic (Ed25519): the same body, the same receipt.
        assert_eq!(sign_receipt(&key, body()).unwrap(), receipt);
    }

    #[test]
    fn tampering_is_detected() {
        let key = HubKey::generate().unwrap();
        let receipt = sign_receipt(&key, body()).unwrap();
        let hash = "ab".repeat(32);

        let mut tampered = receipt.clone();
        tampered.body.pages = 4;
        assert_eq!(
            verify_receipt(&tampered, &key.public_hex(), &hash),
            Err(ReceiptError::BadSignature)
        );

        let other = HubKey::generate().unwrap();
        assert_eq!(
            verify_receipt(&receipt, &other.public_hex(), &hash),
            Err(ReceiptError::BadSignature)
        );

        assert!(matches!(
            verify_receipt(&receipt, &key.public_hex(), &"cd".repeat(32)),
            Err(ReceiptError::ManifestHash { .. })
        ));

        let mut wrong_format = receipt.clone();
        wrong_format.body.format = "dangan-receipt/2".to_owned();
        assert!(matches!(
            verify_receipt(&wrong_format, &key.public_hex(), &hash),
            Err(ReceiptError::Format { .. })
        ));

        let mut bad_encoding = receipt.clone();
        bad_encoding.signature = receipt.signature.to_uppercase();
        assert_eq!(
            verify_receipt(&bad_encoding, &key.public_hex(), &hash),
            Err(ReceiptError::SignatureEncoding)
        );
        bad_encoding.signature.truncate(126);
        assert_eq!(
            verify_receipt(&bad_encoding, &key.public_hex(), &hash),
            Err(ReceiptError::SignatureEncoding)
        );

        assert!(matches!(
            verify_receipt(&receipt, "not hex", &hash),
            Err(ReceiptError::HubKey(_))
        ));
    }

    #[test]
    fn key_round_trips_through_its_bytes() {
        let key = HubKey::generate().unwrap();
        let again = HubKey::from_bytes(&key.to_bytes());
        assert_eq!(again.public_hex(), key.public_hex());
        assert_eq!(key.public_hex().len(), 64);
        assert!(!format!("{key:?}").contains(&to_hex(&key.to_bytes())));
    }

    /// RFC 8032 test 1: a fixed secret gives a fixed public key, so the
    /// signature scheme is plain Ed25519 that any library can check.
    #[test]
    fn ed25519_matches_rfc8032() {
        let secret: [u8; 32] =
            from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let key = HubKey::from_bytes(&secret);
        assert_eq!(
            key.public_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            to_hex(&key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let first = random_token("dn_").unwrap();
        let second = random_token("dn_").unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("dn_"));
        assert_eq!(first.len(), 3 + 64);
        assert_eq!(token_hash(&first), token_hash(&first));
        assert_eq!(token_hash(&first).len(), 64);
        assert!(is_hash_hex(&token_hash(&first)));
        assert_ne!(token_hash(&first), token_hash(&second));
    }

    /// The receipt example of PROTOCOL.md: the RFC 8032 test key signing a
    /// receipt for the golden manifest. Pins the whole scheme: canonical
    /// body bytes, then Ed25519 over them.
    #[test]
    fn golden_receipt() {
        let secret: [u8; 32] =
            from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let key = HubKey::from_bytes(&secret);
        let body = ReceiptBody {
            batch: "310104-2024-0001".to_owned(),
            blobs: 3,
            bytes: 368_333,
            committed_at: "2024-05-07T01:02:03Z".to_owned(),
            district: "310104".to_owned(),
            format: RECEIPT_FORMAT.to_owned(),
            hub_id: "hub-sh".to_owned(),
            manifest_hash: GOLDEN_MANIFEST_HASH.to_owned(),
            node_id: "node-310104-1".to_owned(),
            pages: 3,
        };
        let canonical = String::from_utf8(jcs::to_canonical(&body).unwrap()).unwrap();
        let receipt = sign_receipt(&key, body).unwrap();
        assert_eq!(canonical, GOLDEN_RECEIPT_BODY);
        assert_eq!(receipt.signature, GOLDEN_RECEIPT_SIGNATURE);
        verify_receipt(&receipt, &key.public_hex(), GOLDEN_MANIFEST_HASH).unwrap();
    }

    const GOLDEN_MANIFEST_HASH: &str =
        "fbd8d513ca2c3b31043e3b0c5144e08467cc12a957f955ba3a39395dc0b02093";
    const GOLDEN_RECEIPT_BODY: &str = r#"{"batch":"310104-2024-0001","blobs":3,"bytes":368333,"committed_at":"2024-05-07T01:02:03Z","district":"310104","format":"dangan-receipt/1","hub_id":"hub-sh","manifest_hash":"fbd8d513ca2c3b31043e3b0c5144e08467cc12a957f955ba3a39395dc0b02093","node_id":"node-310104-1","pages":3}"#;
    const GOLDEN_RECEIPT_SIGNATURE: &str = "e9c19b79f4df8735e6b8c8a04a2171793d97ac4b28b6583d80a0e0e7abb36574efb9c904f3bf5476d8c3a65eaced60e43655c961d428895588895feda991e405";
}
