//! Revocation reaches a local-mode client within two poll intervals: after logout-all, a
//! password change or a deactivation the user's old access token is refused by the client
//! (which makes no call per request), the user's cached entries are dropped (a new token makes
//! the client fetch the user again) while other users' entries are untouched, and a new login
//! works again. The client polls the protected feed; when it cannot, it keeps its last state and
//! says so, also in `gatehouse_revocation_feed_lag_seconds` on its `GET /metrics`.
//!
//! The client's metrics are process-wide: under `cargo test` (every test of this file in one
//! process) other tests' clients move them too. Behaviour is read from this test's own client
//! ([`ClientState::revocation_status`], the auth-service's request counter); a counter on
//! `/metrics` is compared with a lower bound; the feed-lag gauge, which every client's poller
//! overwrites, is checked for its value only when the test has its process to itself (nextest).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use client_service::{ClientConfigBuilder, ClientState, RevocationStatus, VerifyMode};
use common::{Options, PASSWORD, Pair};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const FEED_TOKEN: &str = "e2e-feed-token-0123456789abcdef";
/// The client's feed-lag gauge.
const LAG: &str = "gatehouse_revocation_feed_lag_seconds";
/// The client's poll interval in these tests.
const POLL: Duration = Duration::from_secs(1);
/// Allowance on top of two poll intervals for the request that observes the refusal.
const SLACK: Duration = Duration::from_millis(300);

fn with_feed(config: ClientConfigBuilder) -> ClientConfigBuilder {
    config.revocation_feed(FEED_TOKEN).revocation_poll_interval(POLL)
}

async fn start(backend: Backend) -> Option<Pair> {
    let options = Options::new(VerifyMode::Local)
        .auth(|s| s.revocation_feed_token = Some(FEED_TOKEN.into()))
        .configure(with_feed);
    Pair::start(backend, options).await
}

/// Polls `/api/me/` with `token` until the client refuses it; panics after two poll intervals
/// (plus [`SLACK`]) counted from `since`. Returns how long it took.
async fn refused_within_two_polls(pair: &Pair, token: &str, since: Instant) -> Duration {
    let deadline = since + 2 * POLL + SLACK;
    loop {
        let r = pair.get("/api/me/", token).await;
        if r.status == 401 {
            // Refused exactly like any bad token (here: an expired one).
            let claims = shared_user::token::unverified_claims(token).expect("a JWT");
            let user_id = shared_user::token::user_id_of(&claims, "user_id").expect("a user id");
            let bad = pair.get("/api/me/", &common::expired_access(user_id)).await;
            assert_eq!(
                (r.text.as_str(), r.header("www-authenticate")),
                (bad.text.as_str(), bad.header("www-authenticate"))
            );
            return since.elapsed();
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(Instant::now() < deadline, "still accepted {:?} after the revocation", since.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the sample `series` (name and labels) on the client's `GET /metrics`.
async fn metric(pair: &Pair, series: &str) -> Option<f64> {
    let r = pair.get_with("/metrics", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Whether this test runs alone in its process (nextest runs one process per test), so the
/// process-wide gauges on `/metrics` are this test's client's.
fn alone_in_process() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test")
}

/// How long ago this test's client last read the feed successfully (its own feed lag).
fn last_read_ago(client: &ClientState) -> Option<Duration> {
    match client.revocation_status() {
        RevocationStatus::Live { at, .. } => Some(at.elapsed().unwrap_or_default()),
        _ => None,
    }
}

/// Until the first poll has answered, the client cannot know anything.
async fn wait_live(pair: &Pair) {
    let deadline = Instant::now() + 10 * POLL;
    while !matches!(pair.client.revocation_status(), RevocationStatus::Live { .. }) {
        assert!(Instant::now() < deadline, "feed never polled: {:?}", pair.client.revocation_status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn logout_all_reaches_the_client(backend: Backend) {
    let Some(pair) = start(backend).await else { return };
    let alice = pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    wait_live(&pair).await;
    for token in [&old, &bob] {
        assert_eq!(pair.get("/api/me/", token).await.status, 200, "mirrored and cached");
    }

    // Through the client's proxy, like a browser would.
    let auth = format!("Bearer {old}");
    let since = Instant::now();
    let r = pair.post_with("/auth/logout-all/", &json!({}), &[("authorization", auth.as_str())]).await;
    r.expect_json(200, json!({}));
    let took = refused_within_two_polls(&pair, &old, since).await;
    eprintln!("logout-all refused by the client after {took:?}");

    pair.counter.reset();
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "bob is untouched");
    assert_eq!(pair.counter.get("/auth/user/"), 0, "bob's entries were not dropped");

    // A token issued after the watermark, which the client never saw at a login: alice's mirror
    // entry (fresh for the mirror TTL otherwise) was dropped, so the client fetches her again.
    let (_, fresh) = pair.login_direct("alice@example.com").await;
    let fetches = || metric(&pair, "gatehouse_mirror_fetches_total{outcome=\"success\"}");
    let before = fetches().await.unwrap_or_default();
    let r = pair.get("/api/me/", &fresh).await;
    assert_eq!((r.status, r.json()["id"].as_i64()), (200, Some(alice)), "{}", r.text);
    assert_eq!(pair.counter.get("/auth/user/"), 1, "alice was fetched again: {:?}", pair.counter.snapshot());
    // Process-wide: other tests' clients may add to it, never take from it.
    let after = fetches().await.unwrap_or_default();
    assert!(after >= before + 1.0, "one more mirror fetch: {before} then {after}");

    let (_, new) = pair.login("alice@example.com").await;
    let r = pair.get("/api/me/", &new).await;
    assert_eq!(r.status, 200, "a new login works again: {}", r.text);
    assert_eq!(r.json()["email"], "alice@example.com");
    assert_eq!(pair.get("/api/me/", &old).await.status, 401, "the old token stays refused");
    pair.finish().await;
}

async fn password_change_reaches_the_client(backend: Backend) {
    let Some(pair) = start(backend).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    wait_live(&pair).await;
    assert_eq!(pair.get("/api/me/", &old).await.status, 200);

    let new_password = "an entirely new passphrase";
    let since = Instant::now();
    let change = json!({"email": "alice@example.com", "password": PASSWORD, "new_password": new_password});
    pair.post("/auth/password-change/", &change).await.expect_json(200, json!({}));
    refused_within_two_polls(&pair, &old, since).await;
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "bob is untouched");

    let r = pair.post("/auth/token/", &json!({"email": "alice@example.com", "password": new_password})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.json()["access"].as_str().unwrap().to_owned();
    assert_eq!(pair.get("/api/me/", &new).await.status, 200, "the new login works");
    pair.finish().await;
}

async fn deactivation_reaches_the_client(backend: Backend) {
    let Some(pair) = start(backend).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    wait_live(&pair).await;
    assert_eq!(pair.get("/api/me/", &old).await.status, 200);

    let since = Instant::now();
    pair.deactivate("alice@example.com").await; // what `users deactivate` does
    refused_within_two_polls(&pair, &old, since).await;
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "bob is untouched");
    let r = pair.post("/auth/token/", &json!({"email": "alice@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status, 401, "a deactivated user cannot sign in again");
    pair.finish().await;
}

/// Sessions are proxied 1:1: list, delete (204 without a body), 404 for another id.
async fn sessions_are_proxied(backend: Backend) {
    let Some(pair) = start(backend).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (refresh, access) = pair.login("alice@example.com").await;
    let auth = format!("Bearer {access}");
    let headers = [("authorization", auth.as_str()), ("user-agent", "e2e-browser/1")];
    let r = pair.get_with("/auth/sessions/", &headers).await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"), "{}", r.text);
    let listed = r.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let url = |path: &str| format!("{}{path}", pair.client_url);
    let send = |method: reqwest::Method, path: String| {
        pair.http.request(method, url(&path)).header("authorization", auth.as_str()).send()
    };
    let r = send(reqwest::Method::DELETE, "/auth/sessions/not-mine/".into()).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = send(reqwest::Method::DELETE, format!("/auth/sessions/{id}")).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.bytes().await.unwrap().len(), 0, "204 has no body");
    let r = pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    assert_eq!(r.status, 401, "the ended session's refresh token is dead");
    let r = pair.get_with("/auth/sessions", &headers).await;
    r.expect_json(200, json!([]));
    pair.finish().await;
}

/// The feed becomes unreachable: the client keeps its last watermarks (the revoked token stays
/// refused, others keep working), and reports the outage, also as a growing feed lag on its
/// `GET /metrics`.
async fn an_unreachable_feed_keeps_the_last_state(backend: Backend) {
    let Some(mut pair) = start(backend).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    wait_live(&pair).await;
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200);
    let auth = format!("Bearer {old}");
    let since = Instant::now();
    pair.post_with("/auth/logout-all/", &json!({}), &[("authorization", auth.as_str())])
        .await
        .expect_json(200, json!({}));
    refused_within_two_polls(&pair, &old, since).await;
    let ago = last_read_ago(&pair.client).expect("live");
    assert!(ago < POLL, "the feed answers: read {ago:?} ago");
    let lag = metric(&pair, LAG).await.expect("the poller sets the feed lag");
    if alone_in_process() {
        assert!(lag < POLL.as_secs_f64(), "the feed answers: the lag is near 0, not {lag}");
    }

    pair.kill_auth().await;
    let deadline = Instant::now() + 2 * POLL + SLACK + Duration::from_secs(2);
    while !matches!(pair.client.revocation_status(), RevocationStatus::Unreachable { .. }) {
        assert!(Instant::now() < deadline, "outage not reported: {:?}", pair.client.revocation_status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let RevocationStatus::Unreachable { cursor, .. } = pair.client.revocation_status() else { unreachable!() };
    assert!(cursor >= 1, "the cursor reached before the outage is kept");
    assert_eq!(pair.get("/api/me/", &old).await.status, 401, "still refused during the outage");
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "others still served during the outage");

    // The outage goes on: the state stays the last one read, from before the outage began.
    let RevocationStatus::Unreachable { since, .. } = pair.client.revocation_status() else { unreachable!() };
    tokio::time::sleep(2 * POLL + SLACK).await;
    match pair.client.revocation_status() {
        RevocationStatus::Unreachable { since: still, .. } => assert_eq!(still, since, "one outage, not a new one"),
        other => panic!("the outage is over without a feed: {other:?}"),
    }
    // Each failed poll sets the lag again: it keeps growing past the poll interval.
    let first = metric(&pair, LAG).await.expect("feed lag");
    if alone_in_process() {
        let deadline = Instant::now() + 10 * POLL;
        loop {
            let now = metric(&pair, LAG).await.expect("feed lag");
            if now > first && now > 2.0 * POLL.as_secs_f64() {
                break;
            }
            assert!(Instant::now() < deadline, "the feed lag does not grow during the outage: {first} then {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(pair.get("/api/me/", &old).await.status, 401, "still refused later in the outage");
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "others still served later in the outage");
    pair.finish().await;
}

/// A client with a feed token talking to an auth-service without one: it says the feed is off.
async fn a_feed_that_is_off_is_reported(backend: Backend) {
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Local).configure(with_feed)).await else { return };
    let deadline = Instant::now() + 10 * POLL;
    loop {
        if let RevocationStatus::Unreachable { reason, .. } = pair.client.revocation_status() {
            assert!(reason.contains("404"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "not reported: {:?}", pair.client.revocation_status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.finish().await;
}

/// A pair whose client long-polls the feed (its poll interval, only used when long polls fail,
/// 10 s), with `change` made to the auth-service's settings; alice signed in through it, her
/// access token accepted and the feed live.
async fn long_polling_pair(backend: Backend, change: fn(&mut auth_service::Settings)) -> Option<(Pair, String)> {
    let options = Options::new(VerifyMode::Local)
        .auth(|s| {
            s.revocation_feed_token = Some(FEED_TOKEN.into());
            change(s);
        })
        .configure(|c| c.revocation_feed(FEED_TOKEN).revocation_poll_interval(Duration::from_secs(10)));
    let pair = Pair::start(backend, options).await?;
    pair.add_user("alice@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    wait_live(&pair).await;
    assert_eq!(pair.get("/api/me/", &old).await.status, 200);
    Some((pair, old))
}

/// The client long-polls the feed (REVOCATION_FEED_WAIT, 25 s by default): a logout-all
/// reaches it at once, although its poll interval (only used when long polls fail) is 10 s.
async fn long_polling_pushes_a_logout_all_to_the_client(backend: Backend) {
    let Some((pair, old)) = long_polling_pair(backend, |_| {}).await else { return };
    pair.counter.reset();
    let auth = format!("Bearer {old}");
    let since = Instant::now();
    pair.post_with("/auth/logout-all/", &json!({}), &[("authorization", auth.as_str())])
        .await
        .expect_json(200, json!({}));
    while pair.get("/api/me/", &old).await.status != 401 {
        assert!(since.elapsed() < Duration::from_secs(5), "not pushed: polling alone would take 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("logout-all refused by the long-polling client after {:?}", since.elapsed());
    let polls = pair.counter.get("/auth/revocations/");
    assert!(polls <= 3, "one long poll answered, the next one waiting: {:?}", pair.counter.snapshot());
    pair.finish().await;
}

/// A revoked signing key reaches a local-mode client through the feed: its tokens are refused
/// within moments, with no JWKS fetch (the client's copy would still hold the key for minutes),
/// while the successor's tokens are accepted.
async fn a_revoked_signing_key_is_pushed_to_the_client(backend: Backend) {
    use shared_user::jsonwebtoken::Algorithm;
    let Some((pair, old)) = long_polling_pair(backend, |s| s.algorithm = Algorithm::EdDSA).await else { return };
    let kid = shared_user::jsonwebtoken::decode_header(&old).unwrap().kid.expect("a kid");
    pair.counter.reset();
    let since = Instant::now();
    let kek = auth_service::keys::KeyEncryptionKey::parse(common::KEK).expect("KEK");
    let revoked =
        auth_service::keys::revoke(&pair.auth.store, &kid, Algorithm::EdDSA, Some(&kek)).await.expect("revoke");
    assert!(matches!(revoked, auth_service::keys::Revoked::Current(_)), "{revoked:?}");
    while pair.get("/api/me/", &old).await.status != 401 {
        assert!(since.elapsed() < Duration::from_secs(5), "not pushed: the JWKS copy is kept for 5 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revoked key refused by the long-polling client after {:?}", since.elapsed());
    pair.get("/api/me/", &old).await.expect_client_401(common::token_not_valid());
    assert_eq!(pair.counter.get("/.well-known/jwks.json"), 0, "no JWKS fetch: {:?}", pair.counter.snapshot());
    // The feed's entry names the key.
    let r = pair
        .http
        .get(format!("{}/auth/revocations/?after=0", pair.auth_url))
        .header("x-revocation-feed-token", FEED_TOKEN)
        .send()
        .await
        .unwrap();
    let page: serde_json::Value = r.json().await.unwrap();
    let entries = page["revocations"].as_array().unwrap();
    assert!(entries.contains(&json!({"user_id": 0, "not_before": 0, "kid": kid})), "{page}");
    // The successor signs once the replica has seen the revocation; its tokens pass.
    common::reload_auth_keys(&pair).await;
    let (_, new) = pair.login_direct("alice@example.com").await;
    assert_ne!(shared_user::jsonwebtoken::decode_header(&new).unwrap().kid, Some(kid));
    assert_eq!(pair.get("/api/me/", &new).await.status, 200);
    pair.finish().await;
}

/// Remote mode needs no feed: the auth-service's verify applies the watermark at once.
async fn remote_mode_refuses_at_once(backend: Backend) {
    let options = Options::new(VerifyMode::Remote).auth(|s| s.revocation_feed_token = Some(FEED_TOKEN.into()));
    let Some(pair) = Pair::start(backend, options).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    assert_eq!(pair.client.revocation_status(), RevocationStatus::Off, "remote mode does not poll");
    let auth = format!("Bearer {old}");
    pair.post_with("/auth/logout-all/", &json!({}), &[("authorization", auth.as_str())])
        .await
        .expect_json(200, json!({}));
    let r = pair.get("/api/me/", &old).await;
    r.expect_client_401(common::token_not_valid());
    assert_eq!(pair.get("/api/me/", &bob).await.status, 200, "bob is untouched");
    let (_, new) = pair.login("alice@example.com").await;
    assert_eq!(pair.get("/api/me/", &new).await.status, 200, "a new login works again");
    pair.finish().await;
}

both_backends!(
    a_revoked_signing_key_is_pushed_to_the_client,
    long_polling_pushes_a_logout_all_to_the_client,
    logout_all_reaches_the_client,
    remote_mode_refuses_at_once,
    password_change_reaches_the_client,
    deactivation_reaches_the_client,
    sessions_are_proxied,
    an_unreachable_feed_keeps_the_last_state,
    a_feed_that_is_off_is_reported,
);
