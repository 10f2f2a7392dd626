//! A second factor through a real client-service in front of a real auth-service, in both
//! verification modes: the 401 `mfa_required` of the password step passes through unchanged,
//! the second step is proxied, and a route behind `RequireMfaLayer` (`/api/secure/`) takes the
//! tokens of that login (and of their refresh) while it refuses a password-only login's.

#[macro_use]
mod common;

use auth_service::factors::Authenticator;
use client_service::VerifyMode;
use common::{Options, PASSWORD, Pair};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

fn code(auth: &Authenticator, offset: i64) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    auth.code_at(now.checked_add_signed(offset * 30).unwrap())
}

async fn second_factor_through_the_client(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let creds = json!({"email": "alice@example.com", "password": PASSWORD});
    let (_, plain) = pair.login("alice@example.com").await;
    let r = pair.get("/api/secure/", &plain).await;
    r.expect_json(403, json!({"detail": "This action requires multi-factor authentication.", "code": "mfa_required"}));

    // Enrol through the auth-service's API (the client proxies only /auth/token*).
    let auth_bearer = format!("Bearer {plain}");
    let begin = pair
        .send(pair.http.post(format!("{}/auth/mfa/totp/", pair.auth_url)).header("authorization", &auth_bearer))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.text);
    let secret = totp_rs::Secret::try_from_base32(begin.json()["secret"].as_str().unwrap()).unwrap();
    let authenticator = Authenticator::new(secret.as_bytes().to_vec(), "Gatehouse", "alice@example.com").unwrap();
    let confirm = pair
        .send(
            pair.http
                .post(format!("{}/auth/mfa/totp/confirm/", pair.auth_url))
                .header("authorization", &auth_bearer)
                .json(&json!({"code": code(&authenticator, -1)})),
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);

    // Through the client: the challenge byte for byte as the auth-service answers it.
    let step = pair.post("/auth/token/", &creds).await;
    assert_eq!(step.status, 401, "{}", step.text);
    assert_eq!(step.keys(), ["detail", "code", "mfa_token", "methods"]);
    assert_eq!(step.json()["methods"], json!(["totp"]));
    let token = step.json()["mfa_token"].as_str().unwrap().to_owned();
    let pair_reply = pair.post("/auth/token/mfa/", &json!({"mfa_token": token, "code": code(&authenticator, 0)})).await;
    assert_eq!(pair_reply.status, 200, "{}", pair_reply.text);
    assert_eq!(pair_reply.keys(), ["refresh", "access"]);
    let (refresh, access) = (
        pair_reply.json()["refresh"].as_str().unwrap().to_owned(),
        pair_reply.json()["access"].as_str().unwrap().to_owned(),
    );
    let r = pair.get("/api/secure/", &access).await;
    r.expect_json(200, json!("success"));
    // The refresh keeps it.
    let refreshed = pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    pair.get("/api/secure/", refreshed.json()["access"].as_str().unwrap()).await.expect_json(200, json!("success"));
    // The token of the earlier password-only login still is not enough.
    pair.get("/api/secure/", &plain).await.expect_json(
        403,
        json!({"detail": "This action requires multi-factor authentication.", "code": "mfa_required"}),
    );
    pair.finish().await;
}

async fn second_factor_local(backend: Backend) {
    second_factor_through_the_client(backend, VerifyMode::Local).await;
}

async fn second_factor_remote(backend: Backend) {
    second_factor_through_the_client(backend, VerifyMode::Remote).await;
}

both_backends!(second_factor_local, second_factor_remote);
