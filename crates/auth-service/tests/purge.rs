//! Housekeeping purges in batches (#26): more rows than one batch are all deleted, live rows
//! stay, and the sign-in of a user works while a purge runs.

mod common;

use auth_service::schema::refresh_tokens;
use auth_service::store::audit::audit_events;
use axum::http::StatusCode;
use common::*;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use shared_user::testing::Backend;
use shared_user::{DbError, both_backends, with_conn};

const PW: &str = "correct horse battery";
/// More than two batches on either backend (5000 rows on PostgreSQL; on SQLite the first batch
/// is 250 rows and each next one at most twice the one before).
const EXPIRED: usize = 12_345;

/// Inserts `n` refresh records of `user` that expired a day ago, in a few statements.
async fn add_expired_records(app: &TestApp, user: i64, n: usize) {
    let db = &app.db.db;
    let then = chrono::Utc::now().naive_utc() - chrono::Duration::days(2);
    let rows: Vec<_> = (0..n)
        .map(|i| {
            (
                refresh_tokens::jti.eq(format!("old{i}")),
                refresh_tokens::user_id.eq(user),
                refresh_tokens::family.eq(format!("old{}", i / 20)),
                refresh_tokens::created_at.eq(then),
                refresh_tokens::expires_at.eq(then + chrono::Duration::days(1)),
            )
        })
        .collect();
    let done: Result<(), DbError> = async {
        for chunk in rows.chunks(1000) {
            with_conn!(db, |conn| {
                // One row per statement (diesel-async's SQLite has no multi-row insert), one
                // transaction per chunk.
                conn.transaction(async move |conn| {
                    for row in chunk {
                        diesel::insert_into(refresh_tokens::table).values(row.clone()).execute(conn).await?;
                    }
                    Ok::<(), DbError>(())
                })
                .await
            })?;
        }
        Ok(())
    }
    .await;
    done.unwrap();
}

/// Inserts `n` audit events of `days` ago.
async fn add_old_events(app: &TestApp, n: usize, days: i64) {
    let db = &app.db.db;
    let then = chrono::Utc::now().naive_utc() - chrono::Duration::days(days);
    let rows: Vec<_> =
        (0..n).map(|_| (audit_events::created_at.eq(then), audit_events::kind.eq("login_failed"))).collect();
    let done: Result<(), DbError> = async {
        for chunk in rows.chunks(1000) {
            with_conn!(db, |conn| {
                conn.transaction(async move |conn| {
                    for row in chunk {
                        diesel::insert_into(audit_events::table).values(*row).execute(conn).await?;
                    }
                    Ok::<(), DbError>(())
                })
                .await
            })?;
        }
        Ok(())
    }
    .await;
    done.unwrap();
}

async fn count(app: &TestApp, expired_only: bool) -> i64 {
    let db = &app.db.db;
    let now = chrono::Utc::now().naive_utc();
    let n: Result<i64, DbError> = async {
        with_conn!(db, |conn| {
            let mut q = refresh_tokens::table.into_boxed();
            if expired_only {
                q = q.filter(refresh_tokens::expires_at.lt(now));
            }
            Ok(q.count().get_result(conn).await?)
        })
    }
    .await;
    n.unwrap()
}

/// `housekeeping` deletes every expired refresh record however many batches that takes and
/// leaves the live ones; the user's refresh token keeps working during and after it.
async fn expired_records_beyond_one_batch_are_all_purged(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[] as &[&str]).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (refresh, _) = app.login("alice@example.com", PW).await;
    add_expired_records(&app, alice, EXPIRED).await;
    assert_eq!(count(&app, true).await, EXPIRED as i64);

    let purge = auth_service::cli::housekeeping(&app.state.store, std::time::Duration::from_secs(86400));
    let body = serde_json::json!({"refresh": refresh}).to_string();
    let refresh_during = app.post("/auth/token/refresh/", &body);
    let ((tokens, _, _), r) = tokio::join!(async { purge.await.unwrap() }, refresh_during);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(tokens, EXPIRED, "every expired record, in batches");
    assert_eq!(count(&app, true).await, 0, "none left");
    assert!(count(&app, false).await >= 1, "the live record stays");
    let (_, access) = app.login("alice@example.com", PW).await;
    assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK);
}

/// Audit events past `AUDIT_RETENTION` go in batches too; newer ones stay.
async fn old_audit_events_beyond_one_batch_are_all_purged(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[] as &[&str]).await else { return };
    add_old_events(&app, 6_001, 100).await;
    add_old_events(&app, 7, 10).await;
    let day = std::time::Duration::from_secs(86400);
    let (_, _, audit) = auth_service::cli::housekeeping_sessions(&app.state.store, day, 90 * day).await.unwrap();
    assert_eq!(audit, 6_001);
    let left = app.state.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(left.len(), 7, "the events inside the retention stay");
}

both_backends!(expired_records_beyond_one_batch_are_all_purged, old_audit_events_beyond_one_batch_are_all_purged);
