//! SQL of second factors: a user's TOTP secret (sealed) and recovery codes (hashed), passkeys,
//! and the short-lived challenges of a sign-in in two steps or of a passkey ceremony. A change
//! to a user's factors writes its audit event in the same transaction. Single use is decided
//! by the database: a TOTP step, a recovery code and a challenge are each taken by one
//! conditional `UPDATE` that only one caller can win.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::user::now_utc;
use shared_user::{DbError, with_conn, with_write_conn};

use super::Store;
use super::audit::insert_audit;
use crate::audit::AuditEvent;

diesel::table! {
    /// One TOTP authenticator per user (`confirmed_at` null: enrolment not confirmed yet).
    mfa_totp (user_id) {
        user_id -> BigInt,
        secret -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Single-use recovery codes of a user's TOTP enrolment (SHA-256 of the code).
    mfa_recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Passkeys (WebAuthn credentials) of users.
    mfa_passkeys (id) {
        id -> BigInt,
        user_id -> BigInt,
        credential_id -> Text,
        passkey -> Text,
        name -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Challenges: an `mfa_token` (purpose `login`) or a passkey ceremony's state; `id` is
    /// the SHA-256 of the token handed out.
    mfa_challenges (id) {
        id -> Text,
        user_id -> Nullable<BigInt>,
        purpose -> Text,
        state -> Text,
        failures -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

/// A stored TOTP authenticator.
#[derive(Debug, Clone, Queryable)]
pub struct TotpRow {
    /// Owner.
    pub user_id: i64,
    /// The secret, sealed (see `crate::factors::SecretSealer`).
    pub secret: String,
    /// When the enrolment was confirmed with a first code (`None`: pending).
    pub confirmed_at: Option<NaiveDateTime>,
    /// The last time step whose code was accepted.
    pub last_step: i64,
    /// When the enrolment began.
    pub created_at: NaiveDateTime,
}

/// A stored passkey.
#[derive(Debug, Clone, Queryable)]
pub struct PasskeyRow {
    /// Row id (what `DELETE` names).
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The credential as the WebAuthn library stores it (JSON).
    pub passkey: String,
    /// The name the user gave it.
    pub name: String,
    /// When it was registered.
    pub created_at: NaiveDateTime,
    /// When it last signed a sign-in.
    pub last_used_at: Option<NaiveDateTime>,
}

/// A stored challenge.
#[derive(Debug, Clone, Queryable)]
pub struct ChallengeRow {
    /// SHA-256 of the token.
    pub id: String,
    /// The user it is for (`None`: a passwordless passkey sign-in before the user is known).
    pub user_id: Option<i64>,
    /// `login`, `passkey_register`, `passkey_login`.
    pub purpose: String,
    /// What the next step needs (JSON).
    pub state: String,
    /// Wrong answers so far.
    pub failures: i32,
    /// When it was made.
    pub created_at: NaiveDateTime,
    /// When it dies.
    pub expires_at: NaiveDateTime,
    /// When it was used (`None`: not yet).
    pub used_at: Option<NaiveDateTime>,
}

/// A new challenge.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    /// SHA-256 of the token handed out.
    pub id: &'a str,
    /// The user it is for.
    pub user_id: Option<i64>,
    /// What it is for.
    pub purpose: &'a str,
    /// What the next step needs (JSON).
    pub state: &'a str,
    /// When it dies.
    pub expires_at: NaiveDateTime,
}

/// Which second factors a user has (confirmed ones only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorCount {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Registered passkeys.
    pub passkeys: i64,
    /// Unused recovery codes.
    pub recovery_codes: i64,
}

impl FactorCount {
    /// Whether the user has any second factor.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

impl Store {
    /// The user's TOTP authenticator, confirmed or not.
    pub async fn find_totp(&self, user_id: i64) -> Result<Option<TotpRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(mfa_totp::table.find(user_id).first::<TotpRow>(conn).await.optional()?)
        })
    }

    /// Which factors `user_id` has.
    pub async fn factor_count(&self, user_id: i64) -> Result<FactorCount, DbError> {
        with_conn!(self.db(), |conn| {
            let totp: i64 = mfa_totp::table
                .filter(mfa_totp::user_id.eq(user_id))
                .filter(mfa_totp::confirmed_at.is_not_null())
                .count()
                .get_result(conn)
                .await?;
            let passkeys: i64 =
                mfa_passkeys::table.filter(mfa_passkeys::user_id.eq(user_id)).count().get_result(conn).await?;
            let recovery_codes: i64 = mfa_recovery_codes::table
                .filter(mfa_recovery_codes::user_id.eq(user_id))
                .filter(mfa_recovery_codes::used_at.is_null())
                .count()
                .get_result(conn)
                .await?;
            Ok::<_, DbError>(FactorCount { totp: totp > 0, passkeys, recovery_codes })
        })
    }

    /// Starts (or restarts) a TOTP enrolment of `user_id` with the sealed `secret`. A
    /// confirmed authenticator is left alone: returns `false`.
    pub async fn begin_totp(&self, user_id: i64, secret: &str) -> Result<bool, DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let existing: Option<TotpRow> = mfa_totp::table.find(user_id).first(conn).await.optional()?;
                match existing {
                    Some(row) if row.confirmed_at.is_some() => Ok::<bool, DbError>(false),
                    Some(_) => {
                        diesel::update(mfa_totp::table.find(user_id))
                            .set((mfa_totp::secret.eq(secret), mfa_totp::created_at.eq(now), mfa_totp::last_step.eq(0)))
                            .execute(conn)
                            .await?;
                        Ok(true)
                    }
                    None => {
                        diesel::insert_into(mfa_totp::table)
                            .values((
                                mfa_totp::user_id.eq(user_id),
                                mfa_totp::secret.eq(secret),
                                mfa_totp::last_step.eq(0),
                                mfa_totp::created_at.eq(now),
                            ))
                            .execute(conn)
                            .await?;
                        Ok(true)
                    }
                }
            })
            .await
        })
    }

    /// Confirms the pending enrolment of `user_id` with the code of `step`: stores the hashes
    /// of its new recovery codes (replacing any earlier ones) and records `event`, in one
    /// transaction. `false`: nothing pending (already confirmed, removed, or a step not newer
    /// than one already used).
    pub async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        code_hashes: &[String],
        event: &AuditEvent,
    ) -> Result<bool, DbError> {
        let now = now_utc();
        let confirmed = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::update(
                    mfa_totp::table
                        .filter(mfa_totp::user_id.eq(user_id))
                        .filter(mfa_totp::confirmed_at.is_null())
                        .filter(mfa_totp::last_step.lt(step)),
                )
                .set((mfa_totp::confirmed_at.eq(Some(now)), mfa_totp::last_step.eq(step)))
                .execute(conn)
                .await?;
                if n == 0 {
                    return Ok::<bool, DbError>(false);
                }
                // New codes replace any earlier ones.
                diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
                    .execute(conn)
                    .await?;
                for hash in code_hashes {
                    diesel::insert_into(mfa_recovery_codes::table)
                        .values((mfa_recovery_codes::user_id.eq(user_id), mfa_recovery_codes::code_hash.eq(hash)))
                        .execute(conn)
                        .await?;
                }
                insert_audit!(conn, event, now)?;
                Ok(true)
            })
            .await
        })?;
        if confirmed {
            event.log();
        }
        Ok(confirmed)
    }

    /// Takes the code of `step` for `user_id`'s confirmed authenticator: `true` once per step
    /// and never for a step older than the last one taken.
    pub async fn take_totp_step(&self, user_id: i64, step: i64) -> Result<bool, DbError> {
        with_write_conn!(self.db(), |conn| {
            let n = diesel::update(
                mfa_totp::table
                    .filter(mfa_totp::user_id.eq(user_id))
                    .filter(mfa_totp::confirmed_at.is_not_null())
                    .filter(mfa_totp::last_step.lt(step)),
            )
            .set(mfa_totp::last_step.eq(step))
            .execute(conn)
            .await?;
            Ok::<bool, DbError>(n == 1)
        })
    }

    /// Uses the unused recovery code of `user_id` whose hash is `code_hash`: `true` once.
    pub async fn take_recovery_code(&self, user_id: i64, code_hash: &str) -> Result<bool, DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            let n = diesel::update(
                mfa_recovery_codes::table
                    .filter(mfa_recovery_codes::user_id.eq(user_id))
                    .filter(mfa_recovery_codes::code_hash.eq(code_hash))
                    .filter(mfa_recovery_codes::used_at.is_null()),
            )
            .set(mfa_recovery_codes::used_at.eq(Some(now)))
            .execute(conn)
            .await?;
            Ok::<bool, DbError>(n > 0)
        })
    }

    /// Removes `user_id`'s TOTP authenticator and its recovery codes and records `event`, in
    /// one transaction; `false` when there was none.
    pub async fn remove_totp(&self, user_id: i64, event: &AuditEvent) -> Result<bool, DbError> {
        let now = now_utc();
        let removed = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::delete(mfa_totp::table.find(user_id)).execute(conn).await?;
                diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
                    .execute(conn)
                    .await?;
                if n == 0 {
                    return Ok::<bool, DbError>(false);
                }
                insert_audit!(conn, event, now)?;
                Ok(true)
            })
            .await
        })?;
        if removed {
            event.log();
        }
        Ok(removed)
    }

    /// Removes every second factor of `user_id` (TOTP, recovery codes, passkeys, pending
    /// challenges) and records `event`, in one transaction; returns how many factors went.
    pub async fn reset_factors(&self, user_id: i64, event: &AuditEvent) -> Result<usize, DbError> {
        let now = now_utc();
        let removed = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let totp = diesel::delete(mfa_totp::table.find(user_id)).execute(conn).await?;
                diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
                    .execute(conn)
                    .await?;
                let passkeys =
                    diesel::delete(mfa_passkeys::table.filter(mfa_passkeys::user_id.eq(user_id))).execute(conn).await?;
                diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(Some(user_id))))
                    .execute(conn)
                    .await?;
                insert_audit!(conn, event, now)?;
                Ok::<usize, DbError>(totp + passkeys)
            })
            .await
        })?;
        event.log();
        Ok(removed)
    }

    /// Registers a passkey and records `event`, in one transaction; returns its row id.
    pub async fn insert_passkey(
        &self,
        user_id: i64,
        credential_id: &str,
        passkey: &str,
        name: &str,
        event: &AuditEvent,
    ) -> Result<i64, DbError> {
        let now = now_utc();
        let id = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let id: i64 = diesel::insert_into(mfa_passkeys::table)
                    .values((
                        mfa_passkeys::user_id.eq(user_id),
                        mfa_passkeys::credential_id.eq(credential_id),
                        mfa_passkeys::passkey.eq(passkey),
                        mfa_passkeys::name.eq(name),
                        mfa_passkeys::created_at.eq(now),
                    ))
                    .returning(mfa_passkeys::id)
                    .get_result(conn)
                    .await?;
                insert_audit!(conn, event, now)?;
                Ok::<i64, DbError>(id)
            })
            .await
        })?;
        event.log();
        Ok(id)
    }

    /// The passkeys of `user_id`, oldest first.
    pub async fn passkeys_of(&self, user_id: i64) -> Result<Vec<PasskeyRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(
                mfa_passkeys::table
                    .filter(mfa_passkeys::user_id.eq(user_id))
                    .order(mfa_passkeys::id.asc())
                    .load::<PasskeyRow>(conn)
                    .await?,
            )
        })
    }

    /// The passkey whose credential id is `credential_id`.
    pub async fn find_passkey(&self, credential_id: &str) -> Result<Option<PasskeyRow>, DbError> {
        with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(
                mfa_passkeys::table
                    .filter(mfa_passkeys::credential_id.eq(credential_id))
                    .first::<PasskeyRow>(conn)
                    .await
                    .optional()?,
            )
        })
    }

    /// Records a passkey's use: its updated state (the signature counter) and the time.
    pub async fn passkey_used(&self, id: i64, passkey: &str) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            diesel::update(mfa_passkeys::table.find(id))
                .set((mfa_passkeys::passkey.eq(passkey), mfa_passkeys::last_used_at.eq(Some(now))))
                .execute(conn)
                .await?;
            Ok::<(), DbError>(())
        })
    }

    /// Removes passkey `id` of `user_id` and records `event`; `false` when there was none.
    pub async fn delete_passkey(&self, user_id: i64, id: i64, event: &AuditEvent) -> Result<bool, DbError> {
        let now = now_utc();
        let removed = with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                let n = diesel::delete(
                    mfa_passkeys::table.filter(mfa_passkeys::id.eq(id)).filter(mfa_passkeys::user_id.eq(user_id)),
                )
                .execute(conn)
                .await?;
                if n == 0 {
                    return Ok::<bool, DbError>(false);
                }
                insert_audit!(conn, event, now)?;
                Ok(true)
            })
            .await
        })?;
        if removed {
            event.log();
        }
        Ok(removed)
    }

    /// Stores a new challenge.
    pub async fn insert_challenge(&self, new: &NewChallenge<'_>) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            diesel::insert_into(mfa_challenges::table)
                .values((
                    mfa_challenges::id.eq(new.id),
                    mfa_challenges::user_id.eq(new.user_id),
                    mfa_challenges::purpose.eq(new.purpose),
                    mfa_challenges::state.eq(new.state),
                    mfa_challenges::failures.eq(0),
                    mfa_challenges::created_at.eq(now),
                    mfa_challenges::expires_at.eq(new.expires_at),
                ))
                .execute(conn)
                .await?;
            Ok::<(), DbError>(())
        })
    }

    /// The live challenge `id` of `purpose`: not used, not expired, not out of tries
    /// (`max_failures`).
    pub async fn live_challenge(
        &self,
        id: &str,
        purpose: &str,
        max_failures: i32,
    ) -> Result<Option<ChallengeRow>, DbError> {
        let now = now_utc();
        with_conn!(self.db(), |conn| {
            Ok::<_, DbError>(
                mfa_challenges::table
                    .filter(mfa_challenges::id.eq(id))
                    .filter(mfa_challenges::purpose.eq(purpose))
                    .filter(mfa_challenges::used_at.is_null())
                    .filter(mfa_challenges::expires_at.gt(now))
                    .filter(mfa_challenges::failures.lt(max_failures))
                    .first::<ChallengeRow>(conn)
                    .await
                    .optional()?,
            )
        })
    }

    /// Counts a wrong answer to challenge `id`.
    pub async fn fail_challenge(&self, id: &str) -> Result<(), DbError> {
        with_write_conn!(self.db(), |conn| {
            diesel::update(mfa_challenges::table.find(id))
                .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
                .execute(conn)
                .await?;
            Ok::<(), DbError>(())
        })
    }

    /// Uses challenge `id`: `true` for the one caller that uses it while it is live.
    pub async fn take_challenge(&self, id: &str) -> Result<bool, DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            let n = diesel::update(
                mfa_challenges::table
                    .filter(mfa_challenges::id.eq(id))
                    .filter(mfa_challenges::used_at.is_null())
                    .filter(mfa_challenges::expires_at.gt(now)),
            )
            .set(mfa_challenges::used_at.eq(Some(now)))
            .execute(conn)
            .await?;
            Ok::<bool, DbError>(n == 1)
        })
    }

    /// Deletes challenges that expired before `before`; returns how many.
    pub async fn purge_challenges(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_write_conn!(self.db(), |conn| {
            Ok::<usize, DbError>(
                diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(before)))
                    .execute(conn)
                    .await?,
            )
        })
    }
}
