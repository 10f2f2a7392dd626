//! Asymmetric key lifecycle on top of the store: first key at start, rotation steps,
//! revocation, and encryption of the private keys at rest.
//!
//! Private keys are stored sealed with AES-256-GCM under `KEY_ENCRYPTION_KEY`, as
//! `gatehouse-aead-v1:` + base64(nonce ‖ ciphertext ‖ tag), the key id bound as associated
//! data (a sealed key cannot be moved to another row). Rows written before encryption existed
//! hold a PEM and are recognised by it; `auth-service migrate` and `serve` seal them.
//!
//! How a running replica follows the stored keys (revocations within a second, rotations at
//! `KEYS_RELOAD_INTERVAL`) is [`watch`].

pub mod watch;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shared_user::jsonwebtoken::Algorithm;

use crate::store::Store;
use crate::store::signing_keys::{KeyStep, SigningKeyRow};
use crate::tokens::generate_private_pem;

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
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            "KEY_ENCRYPTION_KEY must be 32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`".to_owned()
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
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
    pub fn seal(&self, kid: &str, pem: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_owned())?;
        let mut data = pem.as_bytes().to_vec();
        self.key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| "sealing a private key failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_V1}{}", STANDARD.encode(out)))
    }

    /// Opens what [`KeyEncryptionKey::seal`] made for `kid`.
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, String> {
        let wrong =
            || format!("KEY_ENCRYPTION_KEY does not open signing key {kid} (wrong key, or the row was altered)");
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

/// What to store for a new key: sealed when a key-encryption key is set (development mode
/// may run without one).
fn to_store(kek: Option<&KeyEncryptionKey>, kid: &str, pem: &str) -> Result<String, String> {
    match kek {
        Some(kek) => kek.seal(kid, pem),
        None => Ok(pem.to_owned()),
    }
}

/// The stored keys with their private PEMs opened.
pub async fn load_rows(store: &Store, kek: Option<&KeyEncryptionKey>) -> Result<Vec<SigningKeyRow>, String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    rows.into_iter()
        .map(|mut row| {
            if is_sealed(&row.private_pem) {
                let kek = kek.ok_or_else(|| {
                    format!("signing key {} is encrypted: set KEY_ENCRYPTION_KEY to the key that sealed it", row.kid)
                })?;
                row.private_pem = kek.open(&row.kid, &row.private_pem)?;
            }
            Ok(row)
        })
        .collect()
}

/// Seals every plaintext private key in the store; returns how many were sealed.
pub async fn seal_plaintext_rows(store: &Store, kek: &KeyEncryptionKey) -> Result<usize, String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    let mut sealed = 0;
    for row in rows.iter().filter(|r| !is_sealed(&r.private_pem)) {
        let stored = kek.seal(&row.kid, &row.private_pem)?;
        if store.replace_private_key(&row.kid, &row.private_pem, &stored).await.map_err(|e| e.to_string())? {
            sealed += 1;
        }
    }
    Ok(sealed)
}

fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// The stored keys (opened), sealing plaintext ones when `kek` is set, and creating a
/// `current` key of `alg` when there is none.
///
/// Replicas starting together on a fresh database all find no key and all try to store one:
/// the database decides. It holds at most one `current` key (a unique index on the status
/// `current`, so the rule also binds the CLI and earlier binaries still running), so exactly one
/// insert wins and the others fail with a unique violation; every replica then re-reads the
/// stored set, and so signs with and publishes the one first key before it answers anything.
pub async fn ensure_current(
    store: &Store,
    alg: Algorithm,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Vec<SigningKeyRow>, String> {
    if let Some(kek) = kek {
        let sealed = seal_plaintext_rows(store, kek).await?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted plaintext signing keys at rest");
        }
    }
    let rows = load_rows(store, kek).await?;
    if rows.iter().any(|r| r.status == "current") {
        return Ok(rows);
    }
    let pem = generate_private_pem(alg)?;
    let kid = new_kid();
    match store.add_signing_key(&kid, &format!("{alg:?}"), &to_store(kek, &kid, &pem)?, "current").await {
        Ok(()) => tracing::info!(kid, algorithm = ?alg, "generated the first signing key"),
        // Another replica stored the first key meanwhile (committed before our insert failed).
        Err(shared_user::DbError::Unique) => tracing::info!("another replica generated the first signing key"),
        Err(e) => return Err(e.to_string()),
    }
    let rows = load_rows(store, kek).await?;
    if rows.iter().filter(|r| r.status == "current").count() != 1 {
        return Err("the database must hold exactly one current signing key (run `auth-service migrate`)".into());
    }
    Ok(rows)
}

/// The algorithm a new key gets: see [`new_key_algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewKeyAlgorithm {
    /// The algorithm of the key to create.
    pub algorithm: Algorithm,
    /// The signing key's algorithm when `algorithm` differs from it (a confirmed change).
    pub replaces: Option<Algorithm>,
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

/// The algorithm of a key made now (by `keys rotate`, or as the successor of a revoked signing
/// key): the signing key's, unless `requested` (`--algorithm`, or `ALGORITHM` in the command's
/// environment) names another, which only a `confirmed` change (`--yes`) allows. With no signing
/// key at all: `requested`, else EdDSA.
pub fn new_key_algorithm(
    rows: &[SigningKeyRow],
    requested: Option<Algorithm>,
    confirmed: bool,
) -> Result<NewKeyAlgorithm, UnconfirmedAlgorithmChange> {
    let current = rows
        .iter()
        .filter(|r| r.status == "current")
        .max_by_key(|r| r.activated_at)
        .and_then(|r| crate::tokens::parse_signing_algorithm(&r.algorithm).ok());
    match (current, requested) {
        (None, requested) => Ok(NewKeyAlgorithm { algorithm: requested.unwrap_or(Algorithm::EdDSA), replaces: None }),
        (Some(current), None) => Ok(NewKeyAlgorithm { algorithm: current, replaces: None }),
        (Some(current), Some(requested)) if requested == current => {
            Ok(NewKeyAlgorithm { algorithm: current, replaces: None })
        }
        (Some(current), Some(requested)) if confirmed => {
            Ok(NewKeyAlgorithm { algorithm: requested, replaces: Some(current) })
        }
        (Some(current), Some(requested)) => Err(UnconfirmedAlgorithmChange { current, requested }),
    }
}

/// One rotation step: stage a `next` key of `alg`, or promote the staged one; the step is
/// audited as `key_rotated` in the same transaction.
pub async fn rotate_step(store: &Store, alg: Algorithm, kek: Option<&KeyEncryptionKey>) -> Result<KeyStep, String> {
    if !shared_user::jwks::is_asymmetric(alg) {
        return Err(format!("ALGORITHM={alg:?} uses SIGNING_KEY; only EdDSA, ES256 and RS256 keys rotate here"));
    }
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    if let Some(next) = rows.iter().find(|r| r.status == "next") {
        let promoted = store.promote_next_key().await.map_err(|e| e.to_string())?;
        // None: another rotation promoted it meanwhile (and recorded that).
        return Ok(KeyStep::Promoted(promoted.unwrap_or_else(|| next.kid.clone())));
    }
    let kid = new_kid();
    let status = if rows.iter().any(|r| r.status == "current") { "next" } else { "current" };
    let stored = to_store(kek, &kid, &generate_private_pem(alg)?)?;
    store.add_signing_key(&kid, &format!("{alg:?}"), &stored, status).await.map_err(|e| e.to_string())?;
    Ok(if status == "current" { KeyStep::Promoted(kid) } else { KeyStep::Staged(kid) })
}

/// What `keys rotate` and `keys revoke` were told about the algorithm of a key they may create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlgorithmRequest {
    /// `--algorithm` (or `ALGORITHM`), when given.
    pub algorithm: Option<Algorithm>,
    /// `--yes`: a change of algorithm is confirmed.
    pub confirmed: bool,
}

/// [`rotate_step`] as `keys rotate` runs it: a key it creates takes the signing key's algorithm
/// unless `request` names another and confirms the change ([`new_key_algorithm`]); the step,
/// and the signing key's algorithm when a new key replaces it with another one.
pub async fn rotate(
    store: &Store,
    request: AlgorithmRequest,
    kek: Option<&KeyEncryptionKey>,
) -> Result<(KeyStep, Option<Algorithm>), String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    let choice = new_key_algorithm(&rows, request.algorithm, request.confirmed);
    // A staged key is promoted: no key is created, so no algorithm is chosen.
    if rows.iter().any(|r| r.status == "next") {
        let alg = choice.map_or(Algorithm::EdDSA, |c| c.algorithm);
        return Ok((rotate_step(store, alg, kek).await?, None));
    }
    let choice = choice.map_err(|e| e.to_string())?;
    Ok((rotate_step(store, choice.algorithm, kek).await?, choice.replaces))
}

/// [`revoke`] as `keys revoke` runs it: a successor it creates takes the revoked signing key's
/// algorithm unless `request` names another and confirms the change; what was revoked, and the
/// old algorithm when the successor has another.
pub async fn revoke_as_asked(
    store: &Store,
    kid: &str,
    request: AlgorithmRequest,
    kek: Option<&KeyEncryptionKey>,
) -> Result<(Revoked, Option<Algorithm>), String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    let creates =
        rows.iter().any(|r| r.kid == kid && r.status == "current") && !rows.iter().any(|r| r.status == "next");
    let choice = new_key_algorithm(&rows, request.algorithm, request.confirmed);
    if !creates {
        let alg = choice.map_or(Algorithm::EdDSA, |c| c.algorithm);
        return Ok((revoke(store, kid, alg, kek).await?, None));
    }
    let choice = choice.map_err(|e| e.to_string())?;
    Ok((revoke(store, kid, choice.algorithm, kek).await?, choice.replaces))
}

/// What revoking a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A key that was not signing: unpublished and refused.
    Key,
    /// The signing key: revoked, and `0` signs now (the staged key, or a new one of `alg`).
    Current(String),
}

/// Revokes `kid` in the database: every running replica stops accepting its tokens and
/// publishing it within about a second ([`watch::REVOKED_POLL_INTERVAL`], whatever
/// `KEYS_RELOAD_INTERVAL` is), and local-mode clients refuse its tokens at their next JWKS
/// fetch. Revoking the signing key first promotes the staged one, or creates a new key of
/// `alg`; replicas sign with it as soon as they have seen the revocation.
pub async fn revoke(
    store: &Store,
    kid: &str,
    alg: Algorithm,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Revoked, String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    let Some(row) = rows.iter().find(|r| r.kid == kid && r.status != "revoked") else {
        return Err(format!("no signing key {kid:?} to revoke (see `auth-service keys list`)"));
    };
    let was_current = row.status == "current";
    if was_current {
        // A successor signs before the old key goes, so signing never stops.
        let successor = match rows.iter().find(|r| r.status == "next") {
            Some(next) => next.kid.clone(),
            None => {
                let fresh = new_kid();
                let stored = to_store(kek, &fresh, &generate_private_pem(alg)?)?;
                store.add_signing_key(&fresh, &format!("{alg:?}"), &stored, "next").await.map_err(|e| e.to_string())?;
                fresh
            }
        };
        store.promote_next_key().await.map_err(|e| e.to_string())?;
        store.revoke_signing_key(kid).await.map_err(|e| e.to_string())?;
        return Ok(Revoked::Current(successor));
    }
    store.revoke_signing_key(kid).await.map_err(|e| e.to_string())?;
    Ok(Revoked::Key)
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
        assert!(other.open("kid1", &sealed).unwrap_err().contains("does not open"));
        assert_ne!(kek.seal("kid1", "x").unwrap(), kek.seal("kid1", "x").unwrap(), "fresh nonce each time");
    }

    #[test]
    fn the_key_must_be_32_bytes_of_base64() {
        assert!(KeyEncryptionKey::parse("short").is_err());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(format!("{:?}", KeyEncryptionKey::parse(&STANDARD.encode([1u8; 32])).unwrap()).contains("redacted"));
    }
}
