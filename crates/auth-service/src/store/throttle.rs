//! SQL for the failed-login counters.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::{DbError, with_conn};

use super::Store;
use crate::schema::login_throttle;

/// Policy of one counter family.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Failures allowed before a lock starts.
    pub threshold: i32,
    /// First lock length, doubled per further failure.
    pub base_lock: chrono::Duration,
    /// Longest lock.
    pub max_lock: chrono::Duration,
    /// Failures older than this are forgotten.
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

impl Store {
    /// The latest `locked_until` among `keys` that is after `now`.
    pub async fn throttle_locked_until(
        &self,
        keys: &[String],
        now: NaiveDateTime,
    ) -> Result<Option<NaiveDateTime>, DbError> {
        with_conn!(self.db(), |conn| {
            let until: Vec<Option<NaiveDateTime>> = login_throttle::table
                .filter(login_throttle::key.eq_any(keys))
                .filter(login_throttle::locked_until.gt(Some(now)))
                .select(login_throttle::locked_until)
                .load(conn)
                .await?;
            Ok(until.into_iter().flatten().max())
        })
    }

    /// Counts one failure for `key` (atomically, in the database) and locks it when over `limit`.
    pub async fn throttle_fail(&self, key: &str, limit: Limit, now: NaiveDateTime) -> Result<(), DbError> {
        let stale_before = now - limit.window;
        with_conn!(self.db(), |conn| {
            let key = key.to_owned();
            conn.transaction(async move |conn| {
                diesel::insert_into(login_throttle::table)
                    .values((
                        login_throttle::key.eq(&key),
                        login_throttle::failures.eq(1),
                        login_throttle::last_failure.eq(now),
                    ))
                    .on_conflict(login_throttle::key)
                    .do_update()
                    .set((
                        login_throttle::failures.eq(diesel::dsl::case_when(
                            login_throttle::last_failure.lt(stale_before),
                            excluded(login_throttle::failures),
                        )
                        .otherwise(login_throttle::failures + 1)),
                        login_throttle::last_failure.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                let failures: i32 =
                    login_throttle::table.find(&key).select(login_throttle::failures).first(conn).await?;
                if let Some(lock) = limit.lock_for(failures) {
                    diesel::update(login_throttle::table.find(&key))
                        .set(login_throttle::locked_until.eq(Some(now + lock)))
                        .execute(conn)
                        .await?;
                }
                Ok::<(), DbError>(())
            })
            .await
        })
    }

    /// Forgets the counters of `keys` (after a successful login).
    pub async fn throttle_clear(&self, keys: &[String]) -> Result<(), DbError> {
        with_conn!(self.db(), |conn| {
            diesel::delete(login_throttle::table.filter(login_throttle::key.eq_any(keys))).execute(conn).await?;
            Ok(())
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
