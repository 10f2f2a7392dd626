//! The auth-service dies mid-run: known users keep working in local mode (stale mirror), the
//! rest answers 503 JSON at once instead of hanging, and logout still says goodbye.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use client_service::VerifyMode;
use common::{FAST, Options, PASSWORD, Pair, Reply, connection_error};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

/// Runs `request`, asserting it finishes well inside the client's timeout budget.
async fn quick(what: &str, request: impl std::future::Future<Output = Reply>) -> Reply {
    let started = Instant::now();
    let r = request.await;
    let took = started.elapsed();
    assert!(took < FAST, "{what} took {took:?}: the client should fail fast, not hang");
    r
}

/// Everything that needs the auth-service answers 503 `Connection Error`; logout answers 200.
async fn token_routes_fail_fast(pair: &Pair, refresh: &str, access: &str) {
    let creds = json!({"email": "alice@example.com", "password": PASSWORD});
    for (path, body) in [
        ("/auth/token/", creds.clone()),
        ("/auth/token", creds),
        ("/auth/token/refresh/", json!({"refresh": refresh})),
        ("/auth/token/verify/", json!({"token": access})),
    ] {
        let r = quick(path, pair.post(path, &body)).await;
        r.expect_json(503, connection_error());
    }
    let r = quick("/auth/user/", pair.get("/auth/user/", access)).await;
    r.expect_json(503, connection_error());

    let r = quick("logout", pair.post("/auth/token/logout/", &json!({"refresh": refresh}))).await;
    r.expect_json(200, json!({"detail": "Logged out."}));
    // Requests without credentials never needed the auth-service.
    let r = pair.get_with("/api/test/", &[]).await;
    r.expect_client_401(json!({"detail": "Authentication credentials were not provided."}));
}

async fn local_mode_survives_an_auth_service_outage(backend: Backend) {
    let ttl = Duration::from_millis(500);
    let Some(mut pair) = Pair::start(backend, Options::new(VerifyMode::Local).ttl(ttl)).await else { return };
    let alice_id = pair.add_user("alice@example.com", &["billing"]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (refresh, alice) = pair.login("alice@example.com").await;
    // Bob logged in on the auth-service only: the client does not know him yet.
    let (_, bob) = pair.login_direct("bob@example.com").await;

    pair.kill_auth().await;

    // A mirrored user keeps working, fresh or stale.
    pair.get("/api/test/", &alice).await.expect_json(200, json!("success"));
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    for _ in 0..3 {
        let r = quick("stale alice", pair.get("/api/test/", &alice)).await;
        r.expect_json(200, json!("success"));
    }
    let me = quick("stale alice /api/me/", pair.get("/api/me/", &alice)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["id"], json!(alice_id));
    let r = quick("stale alice billing", pair.get("/api/billing/", &alice)).await;
    r.expect_json(200, json!({"detail": "Welcome to billing, alice@example.com."}));

    // An unknown user cannot be looked up: 503, promptly.
    for path in ["/api/test/", "/api/me/"] {
        let r = quick("unknown bob", pair.get(path, &bob)).await;
        r.expect_json(503, connection_error());
    }
    assert!(pair.mirror().await.users.iter().all(|(_, email, _)| email != "bob@example.com"));

    // Token checks need no network: a bad token is still a 401, not a 503.
    let r = pair.get("/api/test/", "garbage").await;
    r.expect_client_401(common::token_not_valid());

    token_routes_fail_fast(&pair, &refresh, &alice).await;
    pair.finish().await;
}

async fn remote_mode_answers_503_during_an_outage(backend: Backend) {
    let Some(mut pair) = Pair::start(backend, Options::new(VerifyMode::Remote)).await else { return };
    pair.add_user("alice@example.com", &["billing"]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (refresh, alice) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login_direct("bob@example.com").await;
    pair.get("/api/test/", &alice).await.expect_json(200, json!("success"));

    pair.kill_auth().await;

    for token in [&alice, &bob, &"garbage".to_owned()] {
        for path in ["/api/test/", "/api/me/", "/api/billing/"] {
            let r = quick(path, pair.get(path, token)).await;
            r.expect_json(503, connection_error());
        }
    }
    token_routes_fail_fast(&pair, &refresh, &alice).await;
    pair.finish().await;
}

/// A hung auth-service (accepts connections, never answers): the client gives up after its
/// request timeout (1 s here) with 503 "Timed Out." instead of hanging with it, serves a
/// mirrored user from the stale mirror in local mode, and still logs out.
async fn hung_auth_service_times_out_with_503(backend: Backend, mode: VerifyMode) {
    let ttl = Duration::from_millis(300);
    let options = Options::new(mode).ttl(ttl).timeout(Duration::from_secs(1));
    let Some(pair) = Pair::start(backend, options).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (refresh, alice) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login_direct("bob@example.com").await;
    // Alice's mirror entry goes stale, so her next request tries the auth-service too.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    pair.freeze_auth();
    let timed_out = json!({"detail": "Authentication Service Timed Out."});
    let creds = json!({"email": "alice@example.com", "password": PASSWORD});
    let bye = json!({"refresh": refresh});
    let started = Instant::now();
    let (known, unknown, login, logout) = tokio::join!(
        pair.get("/api/test/", &alice),
        pair.get("/api/test/", &bob),
        pair.post("/auth/token/", &creds),
        pair.post("/auth/token/logout/", &bye),
    );
    let took = started.elapsed();
    assert!(took < FAST, "{mode:?}: the client hung with the auth-service ({took:?})");
    match mode {
        VerifyMode::Local => known.expect_json(200, json!("success")),
        VerifyMode::Remote => known.expect_json(503, timed_out.clone()),
    }
    unknown.expect_json(503, timed_out.clone());
    login.expect_json(503, timed_out);
    logout.expect_json(200, json!({"detail": "Logged out."}));
    pair.finish().await;
}

/// A user the auth-service refused as inactive must not come back from the stale mirror when
/// the auth-service then goes away.
async fn deactivated_user_stays_refused_during_an_outage(backend: Backend) {
    let ttl = Duration::from_millis(300);
    let Some(mut pair) = Pair::start(backend, Options::new(VerifyMode::Local).ttl(ttl)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (_, alice) = pair.login("alice@example.com").await;
    pair.get("/api/test/", &alice).await.expect_json(200, json!("success"));

    pair.deactivate("alice@example.com").await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let r = pair.get("/api/test/", &alice).await;
    assert_eq!(r.status, 401, "refused while the auth-service is up: {}", r.text);

    pair.kill_auth().await;
    let r = quick("deactivated alice", pair.get("/api/test/", &alice)).await;
    assert_eq!(r.status, 401, "the stale mirror brought a deactivated user back: {}", r.text);
    pair.finish().await;
}

per_mode!(
    hung_auth_service_times_out_with_503 => hung_auth_service_times_out_with_503_local,
        hung_auth_service_times_out_with_503_remote;
);

both_backends!(
    local_mode_survives_an_auth_service_outage,
    remote_mode_answers_503_during_an_outage,
    hung_auth_service_times_out_with_503_local,
    hung_auth_service_times_out_with_503_remote,
);

both_backends!(deactivated_user_stays_refused_during_an_outage);
