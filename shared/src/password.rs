//! Human passwords: Argon2id PHC strings, so the cost travels with each
//! hash. Hashing is slow on purpose; callers on an async runtime run
//! [`hash_password`] and [`verify_password`] on a blocking thread. Machine
//! credentials (node tokens, sessions, API tokens) are random tokens kept as
//! BLAKE3 hashes instead.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// Argon2id cost: memory in KiB and passes. The default is OWASP's
/// recommendation (19 MiB, 2 passes, 1 lane); tests use the minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("password hashing: {0}")]
    Hash(String),
}

/// An Argon2id PHC string for `password`.
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|err| PasswordError::Hash(err.to_string()))?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| PasswordError::Hash(err.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|err| PasswordError::Hash(err.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hash(err.to_string()))
}

/// Whether `password` matches a stored PHC string (with the cost it names).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };

    #[test]
    fn a_hash_checks_its_own_password_only() {
        let hash = hash_password("correct horse", CHEAP).unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_eq!(hash_password("short", CHEAP), Err(PasswordError::TooShort));
    }
}
