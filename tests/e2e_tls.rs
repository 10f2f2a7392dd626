//! The pair over mutual TLS, end to end: the auth-service serves TLS with certificates from a
//! private CA made for the test (as `auth-service certs init` / `certs client` make them) and
//! requires a client certificate; the client trusts exactly that CA and presents its own. Login
//! through the client's proxy, remote and local verification (HMAC and a JWKS fetched over
//! TLS), the user fetch for the mirror, the revocation feed read with the client's certificate
//! instead of the feed token, and a client without a certificate refused at the handshake.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use client_service::{ClientState, RevocationStatus, VerifyMode};
use common::{Options, Pair, TLS_CLIENT_NAME};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const FEED_TOKEN: &str = "e2e-feed-token-0123456789abcdef";

/// Login through the proxy, a protected route, refresh and the user fetch, all over mutual TLS.
async fn the_pair_works_over_mutual_tls(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode).mutual_tls()).await else { return };
    assert!(pair.auth_url.starts_with("https://"), "{}", pair.auth_url);
    let id = pair.add_user("alice@example.com", &["billing:admin"]).await;
    let (refresh, access) = pair.login("alice@example.com").await;
    let r = pair.get("/api/me/", &access).await;
    assert_eq!((r.status, r.json()["id"].as_i64()), (200, Some(id)), "{}", r.text);
    assert_eq!(r.json()["email"], "alice@example.com");
    let r = pair.post("/auth/token/refresh/", &json!({ "refresh": refresh })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = pair.post("/auth/token/verify/", &json!({ "token": access })).await;
    r.expect_json(200, json!({}));
    // A token the client has not seen at a login: the user is fetched over TLS.
    let (_, direct) = pair.login_direct("alice@example.com").await;
    let r = pair.get("/api/me/", &direct).await;
    assert_eq!(r.status, 200, "{}", r.text);
    pair.finish().await;
}

async fn over_mutual_tls_local(backend: Backend) {
    the_pair_works_over_mutual_tls(backend, VerifyMode::Local).await;
}

async fn over_mutual_tls_remote(backend: Backend) {
    the_pair_works_over_mutual_tls(backend, VerifyMode::Remote).await;
}

/// A local-mode client on EdDSA reads the JWKS over mutual TLS and verifies with it.
async fn jwks_over_mutual_tls(backend: Backend) {
    let options =
        Options::new(VerifyMode::Local).auth(|s| s.algorithm = "EdDSA".parse().expect("algorithm")).mutual_tls();
    let Some(pair) = Pair::start(backend, options).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (_, access) = pair.login("alice@example.com").await;
    let r = pair.get("/api/me/", &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(pair.counter.get("/.well-known/jwks.json") >= 1, "{:?}", pair.counter.snapshot());
    pair.finish().await;
}

/// The feed answers a caller presenting a listed client certificate and no token, and refuses
/// the same request without the certificate's name listed; the client's poller (with the token)
/// reads it over mutual TLS and a logout-all reaches it.
async fn the_feed_over_mutual_tls(backend: Backend) {
    let options = Options::new(VerifyMode::Local)
        .auth(|s| {
            s.revocation_feed_token = Some(FEED_TOKEN.into());
            s.revocation_feed_client_names = vec![TLS_CLIENT_NAME.into()];
        })
        .configure(|c| c.revocation_feed(FEED_TOKEN).revocation_poll_interval(Duration::from_millis(500)))
        .mutual_tls();
    let Some(pair) = Pair::start(backend, options).await else { return };
    // The test's own HTTP client presents the same client certificate, without the feed token.
    let r = pair.http.get(format!("{}/auth/revocations/?after=0", pair.auth_url)).send().await.expect("feed");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("JSON page");
    assert_eq!(status, 200, "{body}");
    assert!(body["revocations"].is_array(), "{body}");

    pair.add_user("alice@example.com", &[]).await;
    let (_, old) = pair.login("alice@example.com").await;
    wait_live(&pair.client).await;
    assert_eq!(pair.get("/api/me/", &old).await.status, 200);
    let auth = format!("Bearer {old}");
    pair.post_with("/auth/logout-all/", &json!({}), &[("authorization", auth.as_str())])
        .await
        .expect_json(200, json!({}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pair.get("/api/me/", &old).await.status != 401 {
        assert!(Instant::now() < deadline, "the revocation never reached the client over TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pair.finish().await;
}

async fn wait_live(client: &ClientState) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(client.revocation_status(), RevocationStatus::Live { .. }) {
        assert!(Instant::now() < deadline, "feed never polled: {:?}", client.revocation_status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that trusts the CA but presents no certificate is refused at the handshake: its
/// callers get the outage answer, not a token.
async fn a_client_without_a_certificate_gets_the_outage_answer(backend: Backend) {
    let options = Options::new(VerifyMode::Remote).mutual_tls();
    let Some(pair) = Pair::start(backend, options).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    // A second client on the same database and CA, without the client certificate.
    let dir = pair.pki.as_ref().expect("mutual TLS").path();
    let config = client_service::ClientConfig::builder(pair.auth_url.clone())
        .remote()
        .ca_file(dir.join(shared_user::pki::files::CA_CERT))
        .build()
        .expect("config");
    let bare = ClientState::new(config, pair.client_db.db.clone()).expect("state");
    let router = client_service::demo::app(bare);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = shared_user::server::serve(listener, router, Default::default(), std::future::pending()).await;
    });
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/auth/token/"))
        .json(&json!({"email": "alice@example.com", "password": common::PASSWORD}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().await.expect("body"), r#"{"detail":"Authentication Service Connection Error."}"#);
    server.abort();
    pair.finish().await;
}

both_backends!(
    over_mutual_tls_local,
    over_mutual_tls_remote,
    jwks_over_mutual_tls,
    the_feed_over_mutual_tls,
    a_client_without_a_certificate_gets_the_outage_answer
);
