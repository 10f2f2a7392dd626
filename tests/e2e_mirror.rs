//! The client's user mirror over real sockets: rows written at login with the auth-service's
//! ids, overwritten once stale, no network per request in local mode, one fetch for many
//! concurrent first requests.

#[macro_use]
mod common;

use std::time::Duration;

use client_service::VerifyMode;
use common::{Options, Pair};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

/// Login fills the mirror; once the TTL passes, the next request overwrites it with the
/// auth-service's groups (replaced, never duplicated).
async fn mirror_follows_the_auth_service(backend: Backend, mode: VerifyMode) {
    let ttl = Duration::from_millis(500);
    let wait = ttl + Duration::from_millis(200);
    let Some(pair) = Pair::start(backend, Options::new(mode).ttl(ttl)).await else { return };
    pair.add_user("first@example.com", &["ops"]).await;
    let id = pair.add_user("alice@example.com", &["billing:admin", "ops"]).await;
    assert!(id > 1, "alice should not have the first id");
    assert!(pair.mirror().await.users.is_empty(), "the client never creates users on its own");

    let (_, access) = pair.login("alice@example.com").await;
    let rows = pair.mirror().await;
    assert_eq!(rows.users, vec![(id, "alice@example.com".to_owned(), true)], "{mode:?}");
    assert_eq!(
        rows.groups,
        vec![(id, "billing".to_owned(), Some("admin".to_owned())), (id, "ops".to_owned(), None)],
        "{mode:?}"
    );
    let first_sync = pair.synced_at(id).await.expect("synced_at set at login");

    // The admin changes alice's groups on the auth-service.
    pair.set_groups("alice@example.com", &["support:2", "billing"]).await;
    tokio::time::sleep(wait).await;
    pair.counter.reset();
    let r = pair.get("/api/me/", &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["access_groups"],
        json!([{"name": "billing", "level": null}, {"name": "support", "level": "2"}])
    );
    assert_eq!(pair.counter.get("/auth/user/"), 1, "stale mirror refetched once: {:?}", pair.counter.snapshot());
    let rows = pair.mirror().await;
    assert_eq!(rows.users, vec![(id, "alice@example.com".to_owned(), true)]);
    assert_eq!(rows.groups, vec![(id, "billing".to_owned(), None), (id, "support".to_owned(), Some("2".to_owned()))]);
    assert!(pair.synced_at(id).await.expect("synced_at") > first_sync, "synced_at moves on");

    // A new login through the client overwrites the same row again: still one row per group.
    pair.set_groups("alice@example.com", &[]).await;
    pair.login("alice@example.com").await;
    let rows = pair.mirror().await;
    assert_eq!(rows.users, vec![(id, "alice@example.com".to_owned(), true)]);
    assert_eq!(rows.groups, vec![], "groups cleared on the auth-service are cleared in the mirror");
    let r = pair.get("/api/billing/", &access).await;
    r.expect_json(403, json!({"detail": "You do not have permission to perform this action."}));
    pair.finish().await;
}

/// Once a user is mirrored, local mode answers from memory and the mirror only; remote mode
/// calls verify once per request (and never refetches a fresh user).
async fn auth_calls_per_request(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    pair.add_user("alice@example.com", &["billing"]).await;
    let (_, access) = pair.login("alice@example.com").await;

    pair.counter.reset();
    for i in 0..20 {
        let path = ["/api/test/", "/api/me/", "/api/billing/"][i % 3];
        let r = pair.get(path, &access).await;
        assert_eq!(r.status, 200, "{mode:?} {path}: {}", r.text);
    }
    let counts = pair.counter.snapshot();
    match mode {
        VerifyMode::Local => assert_eq!(pair.counter.total(), 0, "local mode called out: {counts:?}"),
        VerifyMode::Remote => {
            assert_eq!(pair.counter.get("/auth/token/verify/"), 20, "{counts:?}");
            assert_eq!(pair.counter.total(), 20, "only verify calls: {counts:?}");
        }
    }
    pair.finish().await;
}

/// 20 parallel first requests of a user the client has never seen make one user fetch.
async fn concurrent_first_requests_fetch_the_user_once(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    let id = pair.add_user("alice@example.com", &["billing:admin"]).await;
    // Logged in on the auth-service itself: the client has never heard of alice.
    let (_, access) = pair.login_direct("alice@example.com").await;
    assert!(pair.mirror().await.users.is_empty());

    pair.counter.reset();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let http = pair.http.clone();
        let url = format!("{}/api/test/", pair.client_url);
        let access = access.clone();
        requests.spawn(async move {
            let resp = http.get(url).bearer_auth(access).send().await.expect("request");
            (resp.status().as_u16(), resp.text().await.expect("body"))
        });
    }
    while let Some(done) = requests.join_next().await {
        let (status, text) = done.expect("task");
        assert_eq!((status, text.as_str()), (200, "\"success\""), "{mode:?}");
    }
    let counts = pair.counter.snapshot();
    assert_eq!(pair.counter.get("/auth/user/"), 1, "{mode:?}: one user fetch for 20 requests: {counts:?}");
    let verifies = if mode == VerifyMode::Remote { 20 } else { 0 };
    assert_eq!(pair.counter.get("/auth/token/verify/"), verifies, "{mode:?}: {counts:?}");
    assert_eq!(pair.counter.total(), 1 + verifies, "{mode:?}: {counts:?}");

    let rows = pair.mirror().await;
    assert_eq!(rows.users, vec![(id, "alice@example.com".to_owned(), true)]);
    assert_eq!(rows.groups, vec![(id, "billing".to_owned(), Some("admin".to_owned()))]);
    pair.finish().await;
}

/// 120 users the client has never seen, each with its first request, all at once: every
/// request answers, each user is fetched exactly once, and all of them land in the mirror with
/// their groups (the writer commits them together, and no write is lost or mixed up).
async fn many_new_users_at_once_are_all_mirrored(backend: Backend, mode: VerifyMode) {
    const USERS: usize = 120;
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    let mut expected = Vec::new();
    for i in 0..USERS {
        let email = format!("user{i:03}@example.com");
        let group = format!("team{}:{}", i % 7, i);
        let id = pair.add_user(&email, &[group.as_str()]).await;
        let access = pair.auth.keys.mint(shared_user::TokenType::Access, id).expect("mint").token;
        expected.push((id, email, access, format!("team{}", i % 7), i.to_string()));
    }
    pair.counter.reset();
    let mut requests = tokio::task::JoinSet::new();
    for (id, _, access, _, _) in &expected {
        let (http, url, access, id) = (pair.http.clone(), format!("{}/api/me/", pair.client_url), access.clone(), *id);
        requests.spawn(async move {
            let resp = http.get(url).bearer_auth(access).send().await.expect("request");
            (id, resp.status().as_u16(), resp.json::<serde_json::Value>().await.expect("json body"))
        });
    }
    while let Some(done) = requests.join_next().await {
        let (id, status, body) = done.expect("task");
        assert_eq!(status, 200, "{mode:?} user {id}: {body}");
        assert_eq!(body["id"], json!(id), "{mode:?}: each request gets its own user");
    }
    let counts = pair.counter.snapshot();
    assert_eq!(pair.counter.get("/auth/user/"), USERS, "{mode:?}: one fetch per user: {counts:?}");
    let rows = pair.mirror().await;
    let users: Vec<_> = expected.iter().map(|(id, email, ..)| (*id, email.clone(), true)).collect();
    let groups: Vec<_> =
        expected.iter().map(|(id, _, _, name, level)| (*id, name.clone(), Some(level.clone()))).collect();
    assert_eq!(rows.users, users, "{mode:?}");
    assert_eq!(rows.groups, groups, "{mode:?}");
    pair.finish().await;
}

/// Writes a mirror row for user `id` as another replica sharing the client's database would.
async fn mirror_as_another_replica(pair: &Pair, id: i64, email: &str) {
    let sql = format!(
        "INSERT INTO gatehouse_users (id, email, first_name, last_name, date_joined, is_active, is_staff, \
         is_superuser, synced_at) VALUES ({id}, '{email}', 'Other', 'Replica', CURRENT_TIMESTAMP, TRUE, FALSE, \
         FALSE, CURRENT_TIMESTAMP); INSERT INTO gatehouse_access_groups (user_id, name, level) VALUES ({id}, \
         'billing', 'admin');"
    );
    let insert = async {
        shared_user::with_conn!(&pair.client_db.db, |conn| {
            diesel_async::SimpleAsyncConnection::batch_execute(conn, &sql).await?;
            Ok::<(), shared_user::DbError>(())
        })
    };
    insert.await.expect("insert another replica's mirror row");
}

/// Waits until this process's index of mirrored ids is loaded: then a fresh row another
/// replica wrote is not read (the user is fetched from the auth-service instead), where before
/// the load every lookup reads the database and would serve that row. Each probe is a new user.
async fn wait_for_the_id_index(pair: &Pair) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for probe in 0.. {
        let email = format!("probe{probe}@example.com");
        let id = pair.add_user(&email, &[]).await;
        mirror_as_another_replica(pair, id, &email).await;
        let access = pair.auth.keys.mint(shared_user::TokenType::Access, id).expect("mint").token;
        pair.counter.reset();
        pair.get("/api/test/", &access).await.expect_json(200, json!("success"));
        if pair.counter.get("/auth/user/") == 1 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the index of mirrored ids never loaded ({probe} probes)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A user written to the shared mirror by another replica (so unknown to this process's
/// index of mirrored ids) is still served from the mirror while the auth-service is down.
async fn a_row_another_replica_mirrored_serves_during_an_outage(backend: Backend) {
    let Some(mut pair) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let bob = pair.add_user("bob@example.com", &["billing:admin"]).await;
    let (_, alice) = pair.login("alice@example.com").await;
    pair.get("/api/test/", &alice).await.expect_json(200, json!("success"));
    // The premise: this process has read the mirror's ids before bob's row appears.
    wait_for_the_id_index(&pair).await;
    // Another replica sharing the database mirrors bob.
    mirror_as_another_replica(&pair, bob, "bob@example.com").await;
    let bob_access = pair.auth.keys.mint(shared_user::TokenType::Access, bob).expect("mint").token;
    pair.kill_auth().await;
    let r = pair.get("/api/billing/", &bob_access).await;
    r.expect_json(200, json!({"detail": "Welcome to billing, bob@example.com."}));
    pair.finish().await;
}

/// An email held in the mirror by another id (the account was deleted and created again on
/// the auth-service) moves to the new id: the old row is removed, the request answers.
async fn an_email_that_moved_to_a_new_id_replaces_the_old_row(backend: Backend) {
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    let bob = pair.add_user("bob@example.com", &["ops"]).await;
    let sql = "INSERT INTO gatehouse_users (id, email, first_name, last_name, date_joined, is_active, is_staff, \
               is_superuser, synced_at) VALUES (999999, 'bob@example.com', 'Old', 'Bob', CURRENT_TIMESTAMP, TRUE, \
               FALSE, FALSE, CURRENT_TIMESTAMP); INSERT INTO gatehouse_access_groups (user_id, name, level) \
               VALUES (999999, 'billing', 'admin');";
    let insert = async {
        shared_user::with_conn!(&pair.client_db.db, |conn| {
            diesel_async::SimpleAsyncConnection::batch_execute(conn, sql).await?;
            Ok::<(), shared_user::DbError>(())
        })
    };
    insert.await.expect("insert the old row");
    let access = pair.auth.keys.mint(shared_user::TokenType::Access, bob).expect("mint").token;
    let r = pair.get("/api/me/", &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], json!(bob));
    let rows = pair.mirror().await;
    assert_eq!(rows.users, vec![(bob, "bob@example.com".to_owned(), true)]);
    assert_eq!(rows.groups, vec![(bob, "ops".to_owned(), None)], "the old row's groups went with it");
    pair.finish().await;
}

per_mode!(
    many_new_users_at_once_are_all_mirrored => many_new_users_at_once_are_all_mirrored_local,
        many_new_users_at_once_are_all_mirrored_remote;
    mirror_follows_the_auth_service => mirror_follows_the_auth_service_local, mirror_follows_the_auth_service_remote;
    auth_calls_per_request => local_mode_makes_no_auth_call_per_request, remote_mode_calls_verify_once_per_request;
    concurrent_first_requests_fetch_the_user_once => concurrent_first_requests_fetch_the_user_once_local,
        concurrent_first_requests_fetch_the_user_once_remote;
);

both_backends!(
    an_email_that_moved_to_a_new_id_replaces_the_old_row,
    many_new_users_at_once_are_all_mirrored_local,
    many_new_users_at_once_are_all_mirrored_remote,
    a_row_another_replica_mirrored_serves_during_an_outage,
    mirror_follows_the_auth_service_local,
    mirror_follows_the_auth_service_remote,
    local_mode_makes_no_auth_call_per_request,
    remote_mode_calls_verify_once_per_request,
    concurrent_first_requests_fetch_the_user_once_local,
    concurrent_first_requests_fetch_the_user_once_remote,
);
