//! Asymmetric key lifecycle on top of the store: first key at start, rotation steps,
//! revocation, and encryption of the private keys at rest.
//!
//! Private keys are stored sealed with AES-256-GCM under `KEY_ENCRYPTION_KEY`, as
//! `gatehouse-aead-v1:` + base64(nonce ‖ ciphertext ‖ tag), the key id bound as associated
//! data (a sealed key cannot be moved to another row). Rows written before encryption existed
//! hold a PEM and are recognised by it; `auth-service migrate` and `serve` seal them.
//!
//! How a running replica follows the stored keys (revocations within a second, rotations at
//! `KEYS_RELOAD_INTERVAL`) is [`watch`]; how keys rotate by themselves is [`rotation`].

pub mod rotation;
pub mod watch;

use shared_user::jsonwebtoken::Algorithm;

pub use crate::kek::{KeyEncryptionKey, KeyError, UnconfirmedAlgorithmChange, is_sealed};

use crate::store::Store;
use crate::store::signing_keys::{KeyStep, SigningKeyRow};
use crate::tokens::generate_private_pem;

/// What to store for a new key: sealed when a key-encryption key is set (development mode
/// may run without one).
fn to_store(kek: Option<&KeyEncryptionKey>, kid: &str, pem: &str) -> Result<String, KeyError> {
    match kek {
        Some(kek) => kek.seal(kid, pem),
        None => Ok(pem.to_owned()),
    }
}

/// The stored keys with their private PEMs opened.
pub async fn load_rows(store: &Store, kek: Option<&KeyEncryptionKey>) -> Result<Vec<SigningKeyRow>, KeyError> {
    let rows = store.signing_keys().await?;
    rows.into_iter()
        .map(|mut row| {
            if is_sealed(&row.private_pem) {
                let kek = kek.ok_or_else(|| KeyError::Sealed { kid: row.kid.clone() })?;
                row.private_pem = kek.open(&row.kid, &row.private_pem)?;
            }
            Ok(row)
        })
        .collect()
}

/// Seals every plaintext private key in the store; returns how many were sealed.
pub async fn seal_plaintext_rows(store: &Store, kek: &KeyEncryptionKey) -> Result<usize, KeyError> {
    let rows = store.signing_keys().await?;
    let mut sealed = 0;
    for row in rows.iter().filter(|r| !is_sealed(&r.private_pem)) {
        let stored = kek.seal(&row.kid, &row.private_pem)?;
        if store.replace_private_key(&row.kid, &row.private_pem, &stored).await? {
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
) -> Result<Vec<SigningKeyRow>, KeyError> {
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
        Err(e) => return Err(e.into()),
    }
    let rows = load_rows(store, kek).await?;
    if rows.iter().filter(|r| r.status == "current").count() != 1 {
        return Err(KeyError::NotOneCurrent);
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
        .and_then(|r| shared_user::settings::parse_algorithm(&r.algorithm).ok());
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
pub async fn rotate_step(store: &Store, alg: Algorithm, kek: Option<&KeyEncryptionKey>) -> Result<KeyStep, KeyError> {
    if !shared_user::jwks::is_asymmetric(alg) {
        return Err(KeyError::NotRotatable(alg));
    }
    let rows = store.signing_keys().await?;
    if let Some(next) = rows.iter().find(|r| r.status == "next") {
        let promoted = store.promote_next_key().await?;
        // None: another rotation promoted it meanwhile (and recorded that).
        return Ok(KeyStep::Promoted(promoted.unwrap_or_else(|| next.kid.clone())));
    }
    let kid = new_kid();
    let status = if rows.iter().any(|r| r.status == "current") { "next" } else { "current" };
    let stored = to_store(kek, &kid, &generate_private_pem(alg)?)?;
    store.add_signing_key(&kid, &format!("{alg:?}"), &stored, status).await?;
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
) -> Result<(KeyStep, Option<Algorithm>), KeyError> {
    let rows = store.signing_keys().await?;
    let choice = new_key_algorithm(&rows, request.algorithm, request.confirmed);
    // A staged key is promoted: no key is created, so no algorithm is chosen.
    if rows.iter().any(|r| r.status == "next") {
        let alg = choice.map_or(Algorithm::EdDSA, |c| c.algorithm);
        return Ok((rotate_step(store, alg, kek).await?, None));
    }
    let choice = choice?;
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
) -> Result<(Revoked, Option<Algorithm>), KeyError> {
    let rows = store.signing_keys().await?;
    let creates =
        rows.iter().any(|r| r.kid == kid && r.status == "current") && !rows.iter().any(|r| r.status == "next");
    let choice = new_key_algorithm(&rows, request.algorithm, request.confirmed);
    if !creates {
        let alg = choice.map_or(Algorithm::EdDSA, |c| c.algorithm);
        return Ok((revoke(store, kid, alg, kek).await?, None));
    }
    let choice = choice?;
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
/// `KEYS_RELOAD_INTERVAL` is), and local-mode clients refuse its tokens as soon as the
/// revocation feed, where the revocation is an entry, brings it (or at their next JWKS fetch
/// without the feed). Revoking the signing key first promotes the staged one, or creates a new key of
/// `alg`; replicas sign with it as soon as they have seen the revocation.
pub async fn revoke(
    store: &Store,
    kid: &str,
    alg: Algorithm,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Revoked, KeyError> {
    let rows = store.signing_keys().await?;
    let Some(row) = rows.iter().find(|r| r.kid == kid && r.status != "revoked") else {
        return Err(KeyError::NoSuchKey { kid: kid.to_owned() });
    };
    let was_current = row.status == "current";
    if was_current {
        // A successor signs before the old key goes, so signing never stops.
        let successor = match rows.iter().find(|r| r.status == "next") {
            Some(next) => next.kid.clone(),
            None => {
                let fresh = new_kid();
                let stored = to_store(kek, &fresh, &generate_private_pem(alg)?)?;
                store.add_signing_key(&fresh, &format!("{alg:?}"), &stored, "next").await?;
                fresh
            }
        };
        store.promote_next_key().await?;
        store.revoke_signing_key(kid).await?;
        return Ok(Revoked::Current(successor));
    }
    store.revoke_signing_key(kid).await?;
    Ok(Revoked::Key)
}
