//! Asymmetric key lifecycle on top of the store: first key at start, rotation steps.

use shared_user::jsonwebtoken::Algorithm;

use crate::store::Store;
use crate::store::signing_keys::{KeyStep, SigningKeyRow};
use crate::tokens::generate_private_pem;

fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// The stored keys, creating a `current` key of `alg` when there is none.
pub async fn ensure_current(store: &Store, alg: Algorithm) -> Result<Vec<SigningKeyRow>, String> {
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    if rows.iter().any(|r| r.status == "current") {
        return Ok(rows);
    }
    let pem = generate_private_pem(alg)?;
    let kid = new_kid();
    match store.add_signing_key(&kid, &format!("{alg:?}"), &pem, "current").await {
        Ok(()) => tracing::info!(kid, algorithm = ?alg, "generated the first signing key"),
        // Another replica created one at the same moment: use the stored set.
        Err(shared_user::DbError::Unique) => {}
        Err(e) => return Err(e.to_string()),
    }
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    // Two replicas racing on an empty table may both insert a current key; that is harmless
    // (both are published; the newest signs), so no further coordination is needed.
    Ok(rows)
}

/// One rotation step: stage a `next` key of `alg`, or promote the staged one.
pub async fn rotate_step(store: &Store, alg: Algorithm) -> Result<KeyStep, String> {
    if !shared_user::jwks::is_asymmetric(alg) {
        return Err(format!("ALGORITHM={alg:?} uses SIGNING_KEY; only EdDSA, ES256 and RS256 keys rotate here"));
    }
    let rows = store.signing_keys().await.map_err(|e| e.to_string())?;
    if let Some(next) = rows.iter().find(|r| r.status == "next") {
        let kid = next.kid.clone();
        store.promote_next_key().await.map_err(|e| e.to_string())?;
        return Ok(KeyStep::Promoted(kid));
    }
    let kid = new_kid();
    let status = if rows.iter().any(|r| r.status == "current") { "next" } else { "current" };
    store
        .add_signing_key(&kid, &format!("{alg:?}"), &generate_private_pem(alg)?, status)
        .await
        .map_err(|e| e.to_string())?;
    Ok(if status == "current" { KeyStep::Promoted(kid) } else { KeyStep::Staged(kid) })
}
