//! SQL for the login counters and the addresses known to have signed in to an account.
//!
//! An attempt is first checked with one read ([`Store::throttle_check`]): a locked caller is
//! refused without a write, whatever email it sends. An attempt that passes is counted
//! (reserved) before its password is hashed, in one transaction that first takes a row lock on
//! every counter it touches (an upsert), so concurrent attempts, on one replica or many, are
//! serialised per counter and never pass a limit together. A successful sign-in settles its
//! counters ([`ThrottleSettlement`]) inside the transaction that opens its session
//! (`settle_throttle!`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::{DbError, with_conn, with_write_conn};

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

/// What [`Store::throttle_check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleCheck {
    /// The address signed in to the account within the known-address window.
    pub known: bool,
    /// The latest lock in force on a counter that applies (in the future), if any.
    pub locked_until: Option<NaiveDateTime>,
}

/// What a successful sign-in changes in the login counters, written with the session it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleSettlement {
    /// Counters forgotten.
    pub clear: Vec<String>,
    /// Counters that take back the successful attempt (one each), lifting a lock that falls
    /// below its threshold.
    pub refund: Vec<(String, i32)>,
    /// `(lowercased email, address)`: the address becomes known to the account.
    pub known: Option<(String, String)>,
}

impl ThrottleSettlement {
    /// The counters it touches with their refund threshold (`None`: cleared), in the lock
    /// order of [`Store::throttle_reserve`].
    pub(crate) fn ordered(&self) -> Vec<(&str, Option<i32>)> {
        let mut keys: Vec<(&str, Option<i32>)> = self.clear.iter().map(|k| (k.as_str(), None)).collect();
        keys.extend(self.refund.iter().map(|(k, threshold)| (k.as_str(), Some(*threshold))));
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|a, b| a.0 == b.0);
        keys
    }
}

/// Applies a [`ThrottleSettlement`] as of `$now` on `$conn` (inside the caller's
/// transaction); evaluates to `Result<(), diesel::result::Error>`.
macro_rules! settle_throttle {
    ($conn:expr, $settlement:expr, $now:expr) => {{
        use $crate::schema::login_throttle as t;
        use $crate::store::throttle::login_known_addresses as k;
        let settlement: &$crate::store::throttle::ThrottleSettlement = $settlement;
        async {
            for (key, refund) in settlement.ordered() {
                match refund {
                    None => {
                        diesel::delete(t::table.find(key)).execute($conn).await?;
                    }
                    Some(threshold) => {
                        diesel::update(t::table.find(key).filter(t::failures.gt(0)))
                            .set(t::failures.eq(t::failures - 1))
                            .execute($conn)
                            .await?;
                        diesel::update(t::table.find(key).filter(t::failures.lt(threshold)))
                            .set(t::locked_until.eq(None::<chrono::NaiveDateTime>))
                            .execute($conn)
                            .await?;
                    }
                }
            }
            if let Some((email, ip)) = &settlement.known {
                diesel::insert_into(k::table)
                    .values((k::email.eq(email), k::ip.eq(ip), k::last_success.eq($now)))
                    .on_conflict((k::email, k::ip))
                    .do_update()
                    .set(k::last_success.eq($now))
                    .execute($conn)
                    .await?;
            }
            Ok::<(), diesel::result::Error>(())
        }
        .await
    }};
}
pub(crate) use settle_throttle;

impl Store {
    /// One read, before anything is written: whether the address of `address` (`(lowercased
    /// email, address, known since)`) is known to the account, and the latest lock in force
    /// on the counters `always` and, unless the address is known, `unless_known`.
    pub async fn throttle_check(
        &self,
        always: &[String],
        unless_known: &[String],
        address: Option<(&str, &str, NaiveDateTime)>,
        now: NaiveDateTime,
    ) -> Result<ThrottleCheck, DbError> {
        use diesel::dsl::{exists, max};
        let lock_of = |keys: &[String]| {
            login_throttle::table
                .filter(login_throttle::key.eq_any(keys.to_vec()))
                .filter(login_throttle::locked_until.gt(now))
                .select(max(login_throttle::locked_until))
                .single_value()
        };
        let (known, always_until, other_until): (bool, Option<NaiveDateTime>, Option<NaiveDateTime>) =
            with_conn!(self.db(), |conn| {
                Ok::<_, DbError>(match address {
                    Some((email, ip, since)) => {
                        let known = exists(
                            login_known_addresses::table
                                .filter(login_known_addresses::email.eq(email))
                                .filter(login_known_addresses::ip.eq(ip))
                                .filter(login_known_addresses::last_success.ge(since)),
                        );
                        diesel::select((known, lock_of(always), lock_of(unless_known))).get_result(conn).await?
                    }
                    None => {
                        let (a, b) = diesel::select((lock_of(always), lock_of(unless_known))).get_result(conn).await?;
                        (false, a, b)
                    }
                })
            })?;
        let locked_until = if known { always_until } else { always_until.max(other_until) };
        Ok(ThrottleCheck { known, locked_until })
    }

    /// Applies `settlement` on its own (a sign-in that opens no session: a password change, a
    /// console sign-in refused for its role).
    pub async fn settle_throttle(&self, settlement: &ThrottleSettlement, now: NaiveDateTime) -> Result<(), DbError> {
        with_write_conn!(self.db(), |conn| {
            conn.transaction(async move |conn| {
                settle_throttle!(conn, settlement, now)?;
                Ok::<(), DbError>(())
            })
            .await
        })
    }

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
        with_write_conn!(self.db(), |conn| {
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

    /// Forgets addresses whose last successful sign-in is before `before`.
    pub async fn forget_addresses(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_write_conn!(self.db(), |conn| {
            Ok(diesel::delete(login_known_addresses::table.filter(login_known_addresses::last_success.lt(before)))
                .execute(conn)
                .await?)
        })
    }

    /// Deletes counters idle since before `before`.
    pub async fn throttle_purge(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        with_write_conn!(self.db(), |conn| {
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
