//! The client's token proxy forwards the query string unchanged: `GET /auth/sessions/?page=N`
//! through a client answers exactly what the auth-service answers for page N (another page of a
//! user with more sessions than one page holds, DRF's 404 `{"detail":"Invalid page."}` for a
//! page past the end or not a number), in both slash forms.

#[macro_use]
mod common;

use client_service::VerifyMode;
use common::{Options, Pair, Reply};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

/// Sessions on one page of `GET /auth/sessions/` (the auth-service's `SESSIONS_PAGE_SIZE`).
const PAGE: usize = auth_service::service::sessions::SESSIONS_PAGE_SIZE as usize;

/// `GET path` with `token`, straight to the auth-service (not through the client).
async fn get_auth(pair: &Pair, path: &str, token: &str) -> Reply {
    let resp = pair
        .http
        .get(format!("{}{path}", pair.auth_url))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("auth-service request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Reply { status, headers, text: resp.text().await.expect("body") }
}

/// Asks for `query` of the session list through the client (both slash forms) and straight
/// from the auth-service; the three answers are the same. Returns the client's.
async fn same_through_the_client(pair: &Pair, query: &str, token: &str) -> Reply {
    let direct = get_auth(pair, &format!("/auth/sessions/{query}"), token).await;
    for path in ["/auth/sessions/", "/auth/sessions"] {
        let proxied = pair.get(&format!("{path}{query}"), token).await;
        assert_eq!(
            (proxied.status, proxied.text.as_str()),
            (direct.status, direct.text.as_str()),
            "{path}{query} through the client is the auth-service's answer"
        );
    }
    direct
}

/// A user with one session more than a page holds: page 2 through the client is the
/// auth-service's page 2 (the oldest session alone), not page 1 again.
async fn page_two_reaches_the_auth_service(backend: Backend) {
    // No session cap, so the user keeps every session opened below.
    let options = Options::new(VerifyMode::Local).auth(|s| s.max_sessions_per_user = 0);
    let Some(pair) = Pair::start(backend, options).await else { return };
    let id = pair.add_user("alice@example.com", &[]).await;
    let (_, access) = pair.login("alice@example.com").await;
    let alice = pair.auth.store.find_user(id).await.expect("find user").expect("alice");
    for _ in 0..PAGE {
        auth_service::service::start_session(&pair.auth, alice.clone()).await.expect("open a session");
    }

    let first = same_through_the_client(&pair, "", &access).await;
    assert_eq!((first.status, first.json().as_array().map(Vec::len)), (200, Some(PAGE)), "{}", first.text);
    let page_one = same_through_the_client(&pair, "?page=1", &access).await;
    assert_eq!(page_one.text, first.text, "?page=1 is the first page");
    let second = same_through_the_client(&pair, "?page=2", &access).await;
    assert_eq!((second.status, second.json().as_array().map(Vec::len)), (200, Some(1)), "{}", second.text);
    assert_ne!(second.text, first.text, "page 2 is not page 1");
    same_through_the_client(&pair, "?page=3", &access).await.expect_json(404, json!({"detail": "Invalid page."}));
    pair.finish().await;
}

/// A user with one page of sessions: `?page=2` and `?page=x` through the client are the
/// auth-service's 404 `{"detail":"Invalid page."}`, not the first page.
async fn invalid_pages_reach_the_auth_service(backend: Backend) {
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Remote)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (_, access) = pair.login("alice@example.com").await;
    let first = same_through_the_client(&pair, "?page=1", &access).await;
    assert_eq!((first.status, first.json().as_array().map(Vec::len)), (200, Some(1)), "{}", first.text);
    for query in ["?page=2", "?page=x", "?page=0", "?other=1&page=2"] {
        let r = same_through_the_client(&pair, query, &access).await;
        r.expect_json(404, json!({"detail": "Invalid page."}));
    }
    pair.finish().await;
}

both_backends!(page_two_reaches_the_auth_service, invalid_pages_reach_the_auth_service);
