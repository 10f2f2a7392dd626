//! Attacks through a real client-service: its callers keep their own throttle identity at the
//! auth-service (the proxy forwards each caller's address; the auth-service believes it only
//! from `TRUSTED_PROXIES`), and a caller's own `X-Forwarded-For` changes nothing.

mod common;

use std::net::IpAddr;

use client_service::VerifyMode;
use common::{Options, PASSWORD, Pair, Reply};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const OWNER: &str = "owner@example.com";

/// The client-service reaches the auth-service from 127.0.0.1; callers use other loopback
/// addresses.
async fn pair(backend: Backend) -> Option<Pair> {
    let pair =
        Pair::start(backend, Options::new(VerifyMode::Local).auth(|s| s.trusted_proxies = vec!["127.0.0.1".into()]))
            .await?;
    pair.add_user(OWNER, &[]).await;
    Some(pair)
}

/// A login through the client-service from the loopback address `from`.
async fn login_from(pair: &Pair, from: &str, email: &str, password: &str, headers: &[(&str, &str)]) -> Reply {
    let http = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let mut req =
        http.post(format!("{}/auth/token/", pair.client_url)).json(&json!({"email": email, "password": password}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("transport");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Reply { status, headers, text: resp.text().await.unwrap() }
}

async fn one_callers_failures_do_not_throttle_another_caller(backend: Backend) {
    let Some(pair) = pair(backend).await else { return };
    for i in 0..40 {
        let r = login_from(&pair, "127.0.0.7", &format!("random{i}@example.com"), "guess", &[]).await;
        assert!(matches!(r.status, 401 | 429), "attempt {i}: {} {}", r.status, r.text);
    }
    let r = login_from(&pair, "127.0.0.7", OWNER, PASSWORD, &[]).await;
    assert_eq!(r.status, 429, "the attacking address is throttled: {}", r.text);
    let r = login_from(&pair, "127.0.0.8", OWNER, PASSWORD, &[]).await;
    assert_eq!(r.status, 200, "another caller of the same client-service signs in: {}", r.text);
    pair.finish().await;
}

async fn a_spoofed_forwarded_for_does_not_change_the_caller(backend: Backend) {
    let Some(pair) = pair(backend).await else { return };
    for i in 0..5 {
        // A fresh left-most hop each time: were it believed, every attempt would be a new address.
        let spoof = format!("6.6.6.{i}");
        let r = login_from(&pair, "127.0.0.9", OWNER, "wrong", &[("x-forwarded-for", spoof.as_str())]).await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
    }
    let r = login_from(&pair, "127.0.0.9", OWNER, PASSWORD, &[("x-forwarded-for", "6.6.6.99")]).await;
    assert_eq!(r.status, 429, "the spoofing caller is still locked: {}", r.text);
    assert_eq!(login_from(&pair, "127.0.0.10", OWNER, PASSWORD, &[]).await.status, 200);
    pair.finish().await;
}

both_backends!(one_callers_failures_do_not_throttle_another_caller, a_spoofed_forwarded_for_does_not_change_the_caller);
