//! The key that seals asymmetric private signing keys at rest (`KEY_ENCRYPTION_KEY`), and the
//! one error type of key management ([`KeyError`]).
//!
//! Sealed keys are stored as `gatehouse-aead-v1:` + base64(nonce ‖ ciphertext ‖ tag), AES-256-GCM
//! with the key id bound as associated data (a sealed key cannot be moved to another row).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shared_user::DbError;
use shared_user::jsonwebtoken::Algorithm;

/// Why signing keys could not be loaded, made, sealed, opened, rotated or revoked. `Display` is
/// the one line the service or the `keys` command prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// `KEY_ENCRYPTION_KEY` is not 32 bytes of base64.
    #[error("KEY_ENCRYPTION_KEY must be 32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`")]
    BadKek,
    /// A command that may create keys runs without a key-encryption key (and not in --dev).
    #[error(
        "KEY_ENCRYPTION_KEY is not set: private keys are stored sealed with it (32 random bytes in base64), or use --dev"
    )]
    NoKek,
    /// The key-encryption key does not open a stored key.
    #[error("KEY_ENCRYPTION_KEY does not open signing key {kid} (wrong key, or the row was altered)")]
    WrongKek {
        /// The key that did not open.
        kid: String,
    },
    /// A stored key is sealed and no key-encryption key is set.
    #[error("signing key {kid} is encrypted: set KEY_ENCRYPTION_KEY to the key that sealed it")]
    Sealed {
        /// The sealed key.
        kid: String,
    },
    /// After creating the first key, the database does not hold exactly one signing key.
    #[error("the database must hold exactly one current signing key (run `auth-service migrate`)")]
    NotOneCurrent,
    /// Only asymmetric keys live in the database.
    #[error("ALGORITHM={0:?} uses SIGNING_KEY; only EdDSA, ES256 and RS256 keys rotate here")]
    NotRotatable(Algorithm),
    /// `keys revoke` named a key that is not there (or already revoked).
    #[error("no signing key {kid:?} to revoke (see `auth-service keys list`)")]
    NoSuchKey {
        /// The key id asked for.
        kid: String,
    },
    /// A new key's algorithm differs from the signing key's and the change was not confirmed.
    #[error(transparent)]
    UnconfirmedChange(#[from] UnconfirmedAlgorithmChange),
    /// A key could not be generated, sealed or read (the crypto library's words).
    #[error("{0}")]
    Crypto(String),
    /// The key table could not be read or written.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a new key's algorithm was refused: it differs from the signing key's and the change was
/// not confirmed. The message says what the change means for clients and how to confirm it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the signing key is {current:?} and a {requested:?} key was asked for: clients that accept only {current:?} \
     (a pinned ALGORITHM) will refuse every token it signs; update them first, then confirm with --yes"
)]
pub struct UnconfirmedAlgorithmChange {
    /// The signing key's algorithm.
    pub current: Algorithm,
    /// The algorithm asked for.
    pub requested: Algorithm,
}

/// Marker of a sealed private key (version 1: AES-256-GCM, 96-bit random nonce, kid as AAD).
const SEALED_V1: &str = "gatehouse-aead-v1:";

/// The key that seals private signing keys at rest (`KEY_ENCRYPTION_KEY`, 32 bytes). Never
/// printed.
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

impl KeyEncryptionKey {
    /// Parses the base64 text of 32 random bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::BadKek)?;
        Ok(Self(bytes.try_into().map_err(|_| KeyError::BadKek)?))
    }

    /// The key of these 32 bytes (a key derived from a shared secret).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes, for deriving other keys from (never printed or stored).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.0
    }

    fn key(&self) -> LessSafeKey {
        // A 32-byte key is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES-256 key"))
    }

    /// Seals `pem` for the row of `kid`.
    pub fn seal(&self, kid: &str, pem: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Crypto("no randomness for a nonce".into()))?;
        let mut data = pem.as_bytes().to_vec();
        self.key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| KeyError::Crypto("sealing a private key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_V1}{}", STANDARD.encode(out)))
    }

    /// Opens what [`KeyEncryptionKey::seal`] made for `kid`.
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, KeyError> {
        let wrong = || KeyError::WrongKek { kid: kid.to_owned() };
        let raw = stored.strip_prefix(SEALED_V1).and_then(|b| STANDARD.decode(b).ok()).ok_or_else(wrong)?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut sealed = sealed.to_vec();
        let plain = self.key().open_in_place(nonce, Aad::from(kid.as_bytes()), &mut sealed).map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

/// Whether a stored private key is sealed (rather than a PEM from before encryption).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_V1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_key_and_kid() {
        let kek = KeyEncryptionKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let sealed = kek.seal("kid1", "-----BEGIN PRIVATE KEY-----\nabc\n").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("PRIVATE KEY"));
        assert_eq!(kek.open("kid1", &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----\nabc\n");
        assert!(kek.open("kid2", &sealed).is_err(), "bound to its kid");
        let other = KeyEncryptionKey::parse(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open("kid1", &sealed).unwrap_err().to_string().contains("does not open"));
        assert_ne!(kek.seal("kid1", "x").unwrap(), kek.seal("kid1", "x").unwrap(), "fresh nonce each time");
    }

    #[test]
    fn the_key_must_be_32_bytes_of_base64() {
        assert!(KeyEncryptionKey::parse("short").is_err());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(format!("{:?}", KeyEncryptionKey::parse(&STANDARD.encode([1u8; 32])).unwrap()).contains("redacted"));
    }
}
