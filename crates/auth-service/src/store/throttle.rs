//! SQL for the login counters and the addresses known to have signed in to an account.
//!
//! An attempt is counted (reserved) before its password is hashed, in one transaction that
//! first takes a row lock on every counter it touches (an upsert), so concurrent attempts, on
//! one replica or many, are serialised per counter and never pass a limit together.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::{DbError, with_conn};

use super::Store;
use crate::schema::login_throttle;

diesel::table! {
    /// Addresses that signed in to an account (by lowercased email) successfully.
    login_known_addresses (email, ip) {
        /// Lowercased email of the account.
        email -> Text,
        /// The address, as text.
        ip -> Text,
        /// Last successful sign-in from it.
        last_success -> Timestamp,
    }
}

/// Policy of one counter family.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts allowed before a lock starts (the attempt that reaches it starts the lock).
    pub threshold: i32,
    /// First lock length, doubled per further attempt.
    pub base_lock: chrono::Duration,
    /// Longest lock.
    pub max_lock: chrono::Duration,
    /// Attempts older than this are forgotten.
    pub window: chrono::Duration,
}

impl Limit {
    fn lock_for(&self, failures: i32) -> Option<chrono::Duration> {
        let over = failures - self.threshold;
        if over < 0 {
            return None;
        }
        let factor = 1i32.checked_shl(over.min(20) as u32).unwrap_or(i32::MAX);
        Some((self.base_lock * factor).min(self.max_lock))
    }
}

type CounterRow = (String, i32, NaiveDateTime, Option<NaiveDateTime>);

impl Store {
    /// Counts one attempt on every `(key, limit)` at once, before any password work. When any
    /// of the counters is locked, nothing is counted and the latest `locked_until` is returned;
    /// otherwise each counter grows by one (starting afresh after its window) and locks when it
    /// reaches its threshold.
    pub async fn throttle_reserve(
        &self,
        counters: &[(String, Limit)],
        now: NaiveDateTime,
    ) -> Result<Option<NaiveDateTime>, DbError> {
        let mut counters = counters.to_vec();
        // One lock order for every transaction, so two attempts never wait on each other.
        counters.sort_by(|a, b| a.0.cmp(&b.0));
        counters.dedup_by(|a, b| a.0 == b.0);
        let keys: Vec<String> = counters.iter().map(|(k, _)| k.clone()).collect();
        with_conn!(self.db(), |conn| {
            let (counters, keys) = (counters.clone(), keys.clone());
            conn.transaction(async move |conn| {
                for key in &keys {
                    // Creates the row or rewrites it unchanged: either way it is locked by
                    // this transaction until it ends.
                    diesel::insert_into(login_throttle::table)
                        .values((
                            login_throttle::key.eq(key),
                            login_throttle::failures.eq(0),
                            login_throttle::last_failure.eq(now),
                        ))
                        .on_conflict(login_throttle::key)
                        .do_update()
                        .set(login_throttle::failures.eq(login_throttle::failures))
                        .execute(conn)
                        .await?;
                }
                let rows: Vec<CounterRow> = login_throttle::table
                    .filter(login_throttle::key.eq_any(&keys))
                    .select((
                        login_throttle::key,
                        login_throttle::failures,
                        login_throttle::last_failure,
                        login_throttle::locked_until,
                    ))
                    .load(conn)
                    .await?;
                if let Some(until) = rows.iter().filter_map(|r| r.3).filter(|until| *until > now).max() {
                    return Ok::<_, DbError>(Some(until));
                }
                for (key, limit) in &counters {
                    let Some((_, failures, last, _)) = rows.iter().find(|r| &r.0 == key) else { continue };
                    let count = if *last < now - limit.window { 1 } else { failures.saturating_add(1) };
                    let locked_until = limit.lock_for(count).map(|lock| now + lock);
                    diesel::update(login_throttle::table.find(key))
                        .set((
                            login_throttle::failures.eq(count),
                            login_throttle::last_failure.eq(now),
                            login_throttle::locked_until.eq(locked_until),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(None)
            })
            .await
        })
    }

    /// Takes back one reserved attempt of `key` (a successful sign-in does not count against
    /// its address), lifting the lock when the count falls below the threshold.
    pub async fn throttle_refund(&self, key: &str, limit: Limit) -> Result<(), DbError> {
        with_conn!(self.db(), |conn| {
            let key = key.to_owned();
            conn.transaction(async move |conn| {
                diesel::update(login_throttle::table.find(&key).filter(login_throttle::failures.gt(0)))
                    .set(login_throttle::failures.eq(login_throttle::failures - 1))
                    .execute(conn)
                    .await?;
                diesel::update(login_throttle::table.find(&key).filter(login_throttle::failures.lt(limit.threshold)))
                    .set(login_throttle::locked_until.eq(None::<NaiveDateTime>))
                    .execute(conn)
                    .await?;
                Ok::<(), DbError>(())
            })
            .await
        })
    }

    /// Forgets the counters of `keys` (after a successful login).
    pub async fn throttle_clear(&self, keys: &[String]) -> Result<(), DbError> {
        let mut keys = keys.to_vec();
        // The lock order of `throttle_reserve`, so a clear and a reservation never deadlock.
        keys.sort();
        with_conn!(self.db(), |conn| {
            let keys = keys.clone();
            conn.transaction(async move |conn| {
                for key in &keys {
                    diesel::delete(login_throttle::table.find(key)).execute(conn).await?;
                }
                Ok::<(), DbError>(())
            })
            .await
        })
    }

    /// Whether `ip` signed in to the account `email` (lowercased) at or after `since`.
    pub async fn is_known_address(&self, email: &str, ip: &str, since: NaiveDateTime) -> Result<bool, DbError> {
        with_conn!(self.db(), |conn| {
            let found: Option<NaiveDateTime> = login_known_addresses::table
                .find((email, ip))
                .select(login_known_addresses::last_success)
                .first(conn)
                .await
                .optional()?;
            Ok(found.is_some_and(|t| t >= since))
        })
    }

    /// Records a successful sign-in to `email` (lowercased) from `ip`.
    pub async fn remember_address(&self, email: &str, ip: &str, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(self.db(), |conn| {
            diesel::insert_into(login_known_addresses::table)
                .values((
                    login_known_addresses::email.eq(email),
                    login_known_addresses::ip.eq(ip),
                    login_known_addresses::last_success.eq(now),
                ))
                .on_conflict((login_known_addresses::email, login_known_addresses::ip))
                .do_update()
                .set(login_known_addresses::last_success.eq(now))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Forgets addresses whose last successful sign-in is before `before`.
    pub async fn forget_addresses(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(diesel::delete(login_known_addresses::table.filter(login_known_addresses::last_success.lt(before)))
                .execute(conn)
                .await?)
        })
    }

    /// Deletes counters idle since before `before`.
    pub async fn throttle_purge(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_conn!(self.db(), |conn| {
            Ok(diesel::delete(
                login_throttle::table
                    .filter(login_throttle::last_failure.lt(before))
                    .filter(login_throttle::locked_until.is_null().or(login_throttle::locked_until.lt(Some(before)))),
            )
            .execute(conn)
            .await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_exponentially_and_are_capped() {
        let l = Limit {
            threshold: 3,
            base_lock: chrono::Duration::seconds(1),
            max_lock: chrono::Duration::seconds(60),
            window: chrono::Duration::minutes(15),
        };
        assert_eq!(l.lock_for(2), None);
        assert_eq!(l.lock_for(3), Some(chrono::Duration::seconds(1)));
        assert_eq!(l.lock_for(5), Some(chrono::Duration::seconds(4)));
        assert_eq!(l.lock_for(40), Some(chrono::Duration::seconds(60)));
    }
}
