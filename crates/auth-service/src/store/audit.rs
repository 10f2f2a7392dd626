//! SQL for the audit trail: insert (alone or inside another transaction), list with filters and
//! paging, purge after the retention period.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use shared_user::user::now_utc;
use shared_user::{DbError, with_conn, with_write_conn};

use super::Store;
use crate::audit::AuditEvent;

diesel::table! {
    /// Audit events of the auth-service.
    audit_events (id) {
        id -> BigInt,
        created_at -> Timestamp,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        actor_id -> Nullable<BigInt>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

/// Inserts an [`AuditEvent`] as of `$now` on `$conn` (inside the caller's transaction);
/// evaluates to `Result<usize, diesel::result::Error>`.
macro_rules! insert_audit {
    ($conn:expr, $event:expr, $now:expr) => {{
        use $crate::store::audit::audit_events as t;
        let event: &$crate::audit::AuditEvent = $event;
        diesel::insert_into(t::table)
            .values((
                t::created_at.eq($now),
                t::kind.eq(event.kind.as_str()),
                t::user_id.eq(event.user_id),
                t::actor_id.eq(event.actor_id),
                t::ip.eq(event.ip.as_deref()),
                t::user_agent.eq(event.user_agent.as_deref()),
                t::detail.eq(event.detail.as_deref()),
            ))
            .execute($conn)
            .await
    }};
}
pub(crate) use insert_audit;

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Serialize)]
pub struct AuditRow {
    /// Row id (newest first in listings; page with [`AuditFilter::before_id`]).
    pub id: i64,
    /// When it happened (UTC).
    #[serde(serialize_with = "crate::store::sessions::ser_time")]
    pub created_at: NaiveDateTime,
    /// Event kind (`login_succeeded`, ...).
    pub kind: String,
    /// The account it happened to.
    pub user_id: Option<i64>,
    /// Who did it.
    pub actor_id: Option<i64>,
    /// Client address.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Extra facts (JSON object text).
    pub detail: Option<String>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events about this user.
    pub user_id: Option<i64>,
    /// Only this kind (`login_failed`, ...).
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Only events older than this id (the next page after the last id seen).
    pub before_id: Option<i64>,
    /// At most this many (clamped to 1..=1000; 0 means 100).
    pub limit: i64,
}

impl Store {
    /// Records one event on its own (no surrounding change) and logs it.
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<(), DbError> {
        let now = now_utc();
        with_write_conn!(self.db(), |conn| {
            insert_audit!(conn, event, now)?;
            Ok::<(), DbError>(())
        })?;
        event.log();
        Ok(())
    }

    /// Audit events matching `filter`, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, DbError> {
        let limit = if filter.limit <= 0 { 100 } else { filter.limit.min(1000) };
        with_conn!(self.db(), |conn| {
            let mut query = audit_events::table.into_boxed();
            if let Some(user_id) = filter.user_id {
                query = query.filter(audit_events::user_id.eq(user_id));
            }
            if let Some(kind) = &filter.kind {
                query = query.filter(audit_events::kind.eq(kind.clone()));
            }
            if let Some(since) = filter.since {
                query = query.filter(audit_events::created_at.ge(since));
            }
            if let Some(before) = filter.before_id {
                query = query.filter(audit_events::id.lt(before));
            }
            Ok(query.order(audit_events::id.desc()).limit(limit).load::<AuditRow>(conn).await?)
        })
    }

    /// Deletes audit events older than `before`, in batches (see [`super::purge`]); returns
    /// how many.
    pub async fn purge_audit(&self, before: NaiveDateTime) -> Result<usize, DbError> {
        let sizes = super::purge::Batches::of(self.db());
        super::purge::in_batches("audit_events", sizes, |rows| async move {
            with_write_conn!(self.db(), |conn| {
                let batch = super::purge::batch_filter("id", "audit_events", "created_at", before, rows);
                Ok(diesel::delete(audit_events::table.filter(batch)).execute(conn).await?)
            })
        })
        .await
    }
}
