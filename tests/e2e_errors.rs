//! Errors a protected client-service route answers, exactly as DESIGN.md words them (the EasyJWT
//! 1.1 client's answers, cases C5–C8), in both verification modes: missing and malformed
//! headers, refused tokens, inactive users, groups.

#[macro_use]
mod common;

use std::time::Duration;

use client_service::VerifyMode;
use common::{Options, Pair, expired_access, token_not_valid};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

fn not_provided() -> serde_json::Value {
    json!({"detail": "Authentication credentials were not provided."})
}

async fn bad_credentials_get_the_reference_401_bodies(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    let id = pair.add_user("alice@example.com", &[]).await;
    let (refresh, access) = pair.login("alice@example.com").await;

    for path in ["/api/test/", "/api/me/", "/api/billing/"] {
        // No header at all.
        pair.get_with(path, &[]).await.expect_client_401(not_provided());
        // Another scheme, the right one in the wrong case, or the old colon form: no
        // credentials either.
        for value in [
            format!("Token {access}"),
            format!("bearer {access}"),
            format!("JWT {access}"),
            format!("Bearer: {access}"),
        ] {
            let r = pair.get_with(path, &[("authorization", value.as_str())]).await;
            r.expect_client_401(not_provided());
        }
        // The scheme alone.
        let r = pair.get_with(path, &[("authorization", "Bearer")]).await;
        r.expect_client_401(json!({"detail": "Invalid basic header. No credentials provided."}));
        // More than two parts, a double space included.
        let double = format!("Bearer  {access}");
        for value in ["Bearer a b", double.as_str()] {
            let r = pair.get_with(path, &[("authorization", value)]).await;
            r.expect_client_401(
                json!({"detail": "Invalid basic header. Credentials string should not contain spaces."}),
            );
        }
    }

    // Refused tokens, whatever the mode.
    let tampered = {
        // One signature character changed (not the last, whose low bits are padding).
        let mut chars: Vec<char> = access.chars().collect();
        let i = chars.len() - 5;
        chars[i] = if chars[i] == 'A' { 'Q' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let foreign = {
        use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let claims = serde_json::to_value(shared_user::token::unverified_claims(&access).unwrap()).unwrap();
        let key = EncodingKey::from_secret(b"another-key-another-key-another-key!");
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    };
    let invalid = [
        ("garbage", "garbage".to_owned()),
        ("expired", expired_access(id)),
        ("tampered", tampered),
        ("signed with another key", foreign),
    ];
    for (what, token) in &invalid {
        for path in ["/api/test/", "/api/me/", "/api/billing/"] {
            let r = pair.get(path, token).await;
            assert_eq!(r.status, 401, "{mode:?} {what} on {path}: {}", r.text);
            r.expect_client_401(token_not_valid());
        }
    }
    // A refresh token is not an access token.
    let r = pair.get("/api/test/", &refresh).await;
    r.expect_client_401(token_not_valid());

    // A well-signed token for a user the auth-service does not have: refused, not mirrored.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ghost = common::sign(&json!({
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": "fedcba9876543210fedcba9876543210",
        "user_id": 9999,
    }));
    let r = pair.get("/api/test/", &ghost).await;
    assert_eq!(r.status, 401, "{mode:?}: {}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.header("www-authenticate"), common::CLIENT_WWW_AUTH);
    assert!(pair.mirror().await.users.iter().all(|(uid, _, _)| *uid != 9999), "no ghost row in the mirror");

    // The good token still works after all that.
    pair.get("/api/test/", &access).await.expect_json(200, json!("success"));
    pair.finish().await;
}

async fn billing_needs_the_billing_group(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    pair.add_user("alice@example.com", &["billing:admin"]).await;
    pair.add_user("bob@example.com", &["ops"]).await;
    pair.add_user("carol@example.com", &[]).await;
    let (_, alice) = pair.login("alice@example.com").await;
    let (_, bob) = pair.login("bob@example.com").await;
    // Carol never logged in through the client: the first request mirrors her.
    let (_, carol) = pair.login_direct("carol@example.com").await;

    let r = pair.get("/api/billing/", &alice).await;
    r.expect_json(200, json!({"detail": "Welcome to billing, alice@example.com."}));
    for token in [&bob, &carol] {
        let r = pair.get("/api/billing/", token).await;
        r.expect_json(403, json!({"detail": "You do not have permission to perform this action."}));
        assert_eq!(r.header("www-authenticate"), "", "no WWW-Authenticate on a 403");
        // Authenticated, just not allowed: the open routes still answer.
        pair.get("/api/test/", token).await.expect_json(200, json!("success"));
    }
    pair.finish().await;
}

/// A user deactivated on the auth-service is refused once the mirror entry goes stale.
async fn inactive_user_is_refused(backend: Backend, mode: VerifyMode) {
    let ttl = Duration::from_millis(500);
    let Some(pair) = Pair::start(backend, Options::new(mode).ttl(ttl)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (refresh, access) = pair.login("alice@example.com").await;
    pair.get("/api/test/", &access).await.expect_json(200, json!("success"));

    pair.deactivate("alice@example.com").await;
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    for path in ["/api/test/", "/api/me/", "/api/billing/"] {
        let r = pair.get(path, &access).await;
        assert_eq!(r.status, 401, "{mode:?} {path}: {}", r.text);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(r.header("www-authenticate"), common::CLIENT_WWW_AUTH);
        assert!(r.json()["detail"].is_string(), "{}", r.text);
    }
    // Nor can the user log in again or refresh.
    let r = pair.post("/auth/token/", &json!({"email": "alice@example.com", "password": common::PASSWORD})).await;
    r.expect_client_401(json!({"detail": "No active account found with the given credentials"}));
    let r = pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    assert_eq!(r.status, 401, "{mode:?}: a deactivated user's refresh token still works: {}", r.text);
    assert_eq!(
        r.header("www-authenticate"),
        common::CLIENT_WWW_AUTH,
        "the auth-service's refusal, with the client's own header"
    );
    pair.finish().await;
}

per_mode!(
    bad_credentials_get_the_reference_401_bodies => bad_credentials_get_the_reference_401_bodies_local,
        bad_credentials_get_the_reference_401_bodies_remote;
    billing_needs_the_billing_group => billing_needs_the_billing_group_local, billing_needs_the_billing_group_remote;
    inactive_user_is_refused => inactive_user_is_refused_local, inactive_user_is_refused_remote;
);

both_backends!(
    bad_credentials_get_the_reference_401_bodies_local,
    bad_credentials_get_the_reference_401_bodies_remote,
    billing_needs_the_billing_group_local,
    billing_needs_the_billing_group_remote,
    inactive_user_is_refused_local,
    inactive_user_is_refused_remote,
);
