//! SQL for the asymmetric signing keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::now_utc;
use shared_user::{DbError, with_conn, with_write_conn};

use super::Store;
use super::audit::insert_audit;
use super::revocations::insert_revocation;
use crate::audit::{AuditEvent, AuditKind};
use crate::schema::signing_keys;

/// The `key_rotated` event of a rotation step.
fn rotated(step: &str, kid: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::KeyRotated).detail(serde_json::json!({"step": step, "kid": kid}))
}

/// A stored signing key (its private PEM never leaves the auth-service).
#[derive(Debug, Clone, Queryable)]
pub struct SigningKeyRow {
    /// Key id, the `kid` header of tokens it signs.
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// PKCS#8 PEM of the private key, as stored: sealed (see `crate::kek`) or, from before
    /// encryption, plain.
    pub private_pem: String,
    /// `next` (published, not yet signing), `current` (signing), `retired` (published until
    /// its tokens expire) or `revoked` (neither published nor accepted).
    pub status: String,
    /// When it was created.
    pub created_at: NaiveDateTime,
    /// When it started signing.
    pub activated_at: Option<NaiveDateTime>,
    /// When it stopped signing.
    pub retired_at: Option<NaiveDateTime>,
}

/// What a rotation step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStep {
    /// A new key was staged as `next` (published, not signing yet).
    Staged(String),
    /// The staged key became `current`; the previous current key is `retired`.
    Promoted(String),
}

impl Store {
    /// All signing keys, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(signing_keys::table.order(signing_keys::created_at.desc()).load::<SigningKeyRow>(conn).await?)
        })
    }

    /// Stores a new key with `status` (`next` or `current`), with its `key_rotated` event
    /// (`{"step":"staged"|"promoted","kid":KID}`) in the same transaction: every change of the
    /// signing keys (the first key, `keys rotate`, the successor of a revoked key) is audited.
    pub async fn add_signing_key(
        &self,
        kid: &str,
        algorithm: &str,
        private_pem: &str,
        status: &str,
    ) -> Result<(), DbError> {
        let now = now_utc();
        let activated = (status == "current").then_some(now);
        let event = rotated(if status == "current" { "promoted" } else { "staged" }, kid);
        with_write_conn!(self.db(), |conn| {
            let event = event.clone();
            conn.transaction(async move |conn| {
                diesel::insert_into(signing_keys::table)
                    .values((
                        signing_keys::kid.eq(kid),
                        signing_keys::algorithm.eq(algorithm),
                        signing_keys::private_pem.eq(private_pem),
                        signing_keys::status.eq(status),
                        signing_keys::created_at.eq(now),
                        signing_keys::activated_at.eq(activated),
                    ))
                    .execute(conn)
                    .await?;
                insert_audit!(conn, &event, now)?;
                Ok::<(), DbError>(())
            })
            .await
        })?;
        event.log();
        Ok(())
    }

    /// Promotes the staged `next` key to `current` and retires the previous current key, with
    /// its `key_rotated` event, in one transaction; the promoted kid, `None` when nothing is
    /// staged (or another promotion took it first).
    pub async fn promote_next_key(&self) -> Result<Option<String>, DbError> {
        let next: Option<String> = with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(
                signing_keys::table
                    .filter(signing_keys::status.eq("next"))
                    .order(signing_keys::created_at.asc())
                    .select(signing_keys::kid)
                    .first(conn)
                    .await
                    .optional()?,
            )
        })?;
        let Some(next) = next else { return Ok(None) };
        Ok(self.promote_staged_key(&next).await?.then_some(next))
    }

    /// Promotes `kid` to `current` if it still is the staged key, retiring the signing key, with
    /// the `key_rotated` event, in one transaction; `false` (and nothing changed) when `kid` is
    /// no longer staged: replicas racing to promote it, exactly one wins. The staged row is
    /// claimed first (a conditional update that a concurrent winner makes match nothing), so a
    /// loser never retires the winner's key.
    pub async fn promote_staged_key(&self, kid: &str) -> Result<bool, DbError> {
        let now = now_utc();
        let promoted = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let claimed = diesel::update(signing_keys::table.find(kid).filter(signing_keys::status.eq("next")))
                    .set(signing_keys::status.eq("promoting"))
                    .execute(conn)
                    .await?;
                if claimed == 0 {
                    return Ok::<Option<AuditEvent>, DbError>(None);
                }
                diesel::update(signing_keys::table.filter(signing_keys::status.eq("current")))
                    .set((signing_keys::status.eq("retired"), signing_keys::retired_at.eq(Some(now))))
                    .execute(conn)
                    .await?;
                diesel::update(signing_keys::table.find(kid))
                    .set((signing_keys::status.eq("current"), signing_keys::activated_at.eq(Some(now))))
                    .execute(conn)
                    .await?;
                let event = rotated("promoted", kid);
                insert_audit!(conn, &event, now)?;
                Ok(Some(event))
            })
            .await
        })?;
        Ok(promoted.map(|event| event.log()).is_some())
    }

    /// Replaces the stored private key of `kid` when it still is `expected`; `false` otherwise.
    pub async fn replace_private_key(&self, kid: &str, expected: &str, stored: &str) -> Result<bool, DbError> {
        with_write_conn!(self.db(), |conn| {
            let n = diesel::update(signing_keys::table.find(kid).filter(signing_keys::private_pem.eq(expected)))
                .set(signing_keys::private_pem.eq(stored))
                .execute(conn)
                .await?;
            Ok(n > 0)
        })
    }

    /// Marks `kid` revoked (not published, its tokens refused) and announces it in the
    /// revocation feed, in one transaction; `false` when there is no such key.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<bool, DbError> {
        let now = now_utc();
        let revoked = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::update(signing_keys::table.find(kid))
                    .set((signing_keys::status.eq("revoked"), signing_keys::retired_at.eq(Some(now))))
                    .execute(conn)
                    .await?;
                if n > 0 {
                    insert_revocation!(conn, 0_i64, 0_i64, now, Some(kid))?;
                }
                Ok::<bool, DbError>(n > 0)
            })
            .await
        })?;
        if revoked {
            // Long polls of the feed answer now.
            self.feed_watch.poke();
        }
        Ok(revoked)
    }

    /// The kids of revoked keys: one small read (revocations are rare and the table holds a
    /// handful of rows), no private material. Every replica polls it each second.
    pub async fn revoked_kids(&self) -> Result<Vec<String>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(signing_keys::table
                .filter(signing_keys::status.eq("revoked"))
                .select(signing_keys::kid)
                .load::<String>(conn)
                .await?)
        })
    }

    /// Deletes retired keys that stopped signing before `before` (their tokens have expired).
    pub async fn delete_retired_keys(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_write_conn!(self.db(), |conn| {
            Ok(diesel::delete(
                signing_keys::table
                    .filter(signing_keys::status.eq("retired"))
                    .filter(signing_keys::retired_at.lt(Some(before))),
            )
            .execute(conn)
            .await?)
        })
    }
}
