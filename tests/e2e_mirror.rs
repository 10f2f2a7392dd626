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

per_mode!(
    mirror_follows_the_auth_service => mirror_follows_the_auth_service_local, mirror_follows_the_auth_service_remote;
    auth_calls_per_request => local_mode_makes_no_auth_call_per_request, remote_mode_calls_verify_once_per_request;
    concurrent_first_requests_fetch_the_user_once => concurrent_first_requests_fetch_the_user_once_local,
        concurrent_first_requests_fetch_the_user_once_remote;
);

both_backends!(
    mirror_follows_the_auth_service_local,
    mirror_follows_the_auth_service_remote,
    local_mode_makes_no_auth_call_per_request,
    remote_mode_calls_verify_once_per_request,
    concurrent_first_requests_fetch_the_user_once_local,
    concurrent_first_requests_fetch_the_user_once_remote,
);
