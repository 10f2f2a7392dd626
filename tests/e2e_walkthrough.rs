//! The EasyJWT curl walkthrough, done through a real client-service in front of a real
//! auth-service, in both verification modes; and logout through the client.

#[macro_use]
mod common;

use client_service::VerifyMode;
use common::{Options, PASSWORD, Pair};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const USER_KEYS: [&str; 11] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "date_joined",
    "last_login",
    "is_active",
    "is_staff",
    "is_superuser",
    "accessgroup",
    "access_groups",
];

#[track_caller]
fn assert_alice(r: &common::Reply, id: i64) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.keys(), USER_KEYS, "user keys in order: {}", r.text);
    let v = r.json();
    assert_eq!(v["id"], json!(id));
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["is_active"], true);
    assert_eq!(v["accessgroup"], json!({"user_type": "admin"}));
    assert_eq!(v["access_groups"], json!([{"name": "billing", "level": "admin"}, {"name": "ops", "level": null}]));
}

async fn curl_walkthrough_through_the_client(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    // Someone else first, so alice's id is not trivially 1.
    pair.add_user("first@example.com", &[]).await;
    let id = pair.add_user("alice@example.com", &["billing:admin", "ops"]).await;
    let creds = json!({"email": "alice@example.com", "password": PASSWORD});

    // Obtain, both slash forms, with a stale bearer header a SPA might still send.
    let mut tokens = Vec::new();
    for path in ["/auth/token/", "/auth/token"] {
        let r = pair.post_with(path, &creds, &[("authorization", "Bearer garbage")]).await;
        assert_eq!(r.status, 200, "{mode:?} {path}: {}", r.text);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(r.keys(), ["refresh", "access"], "{path}");
        assert!(r.text.starts_with("{\"refresh\":\""), "compact JSON: {}", r.text);
        let v = r.json();
        tokens.push((v["refresh"].as_str().unwrap().to_owned(), v["access"].as_str().unwrap().to_owned()));
    }
    let (refresh, access) = tokens.pop().unwrap();

    // The walkthrough's protected route.
    let r = pair.get("/api/test/", &access).await;
    r.expect_json(200, json!("success"));
    assert_eq!(r.text, "\"success\"");

    // Refresh, both slash forms (a stale header does not matter here either).
    for path in ["/auth/token/refresh/", "/auth/token/refresh"] {
        let r = pair.post_with(path, &json!({"refresh": refresh}), &[("authorization", "Bearer garbage")]).await;
        assert_eq!(r.status, 200, "{mode:?} {path}: {}", r.text);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(r.keys(), ["access"], "{path}");
        let new_access = r.json()["access"].as_str().unwrap().to_owned();
        pair.get("/api/test/", &new_access).await.expect_json(200, json!("success"));
    }

    // Verify, both slash forms; verify accepts a refresh token too.
    for path in ["/auth/token/verify/", "/auth/token/verify"] {
        pair.post(path, &json!({"token": access})).await.expect_json(200, json!({}));
        pair.post(path, &json!({"token": refresh})).await.expect_json(200, json!({}));
    }

    // The user endpoints, proxied: current and legacy, both slash forms.
    let mut bodies = Vec::new();
    for path in
        ["/auth/user/".to_owned(), "/auth/user".to_owned(), format!("/auth/users/{id}/"), format!("/auth/users/{id}")]
    {
        let r = pair.get(&path, &access).await;
        assert_alice(&r, id);
        bodies.push(r.json());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "same user on every form: {bodies:?}");

    // The mirrored user the service's own handlers see is the auth-service's payload.
    let me = pair.get("/api/me/", &access).await;
    assert_alice(&me, id);
    assert_eq!(me.json(), bodies[0], "{mode:?}: mirror differs from the auth-service's user");

    pair.finish().await;
}

async fn logout_through_the_client_blacklists_the_refresh_token(backend: Backend, mode: VerifyMode) {
    let Some(pair) = Pair::start(backend, Options::new(mode)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let (refresh, access) = pair.login("alice@example.com").await;
    pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;

    pair.counter.reset();
    let r = pair.post("/auth/token/logout/", &json!({"refresh": refresh})).await;
    r.expect_json(200, json!({"detail": "Logged out."}));
    assert_eq!(pair.counter.get("/auth/token/blacklist/"), 1, "{:?}", pair.counter.snapshot());

    // The refresh token is dead on the auth-service, seen through the client.
    let r = pair.post("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    r.expect_client_401(json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
    // ... and straight on the auth-service.
    let r = pair.post_auth("/auth/token/refresh/", &json!({"refresh": refresh})).await;
    r.expect_401(json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));

    // Logout is always 200: a JSON null body, no token, a garbage token, the bare path form.
    for (path, body) in [
        ("/auth/token/logout", Value::Null),
        ("/auth/token/logout/", json!({})),
        ("/auth/token/logout/", json!({"refresh": "garbage"})),
        ("/auth/token/logout", json!({"refresh": refresh})),
    ] {
        let r = pair.post(path, &body).await;
        r.expect_json(200, json!({"detail": "Logged out."}));
    }

    // The access token is not revoked by logout (it simply expires).
    pair.get("/api/test/", &access).await.expect_json(200, json!("success"));
    pair.finish().await;
}

/// Refusals of the auth-service reach the caller through the proxy with their status and body,
/// and a 401 with the client's own `WWW-Authenticate: Bearer` (as the EasyJWT 1.1 client's token
/// routes answer); unknown paths and wrong methods get the JSON fallbacks; never a redirect.
async fn auth_service_refusals_pass_through_the_client(backend: Backend) {
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    pair.add_user("alice@example.com", &[]).await;
    let no_account = json!({"detail": "No active account found with the given credentials"});
    for path in ["/auth/token/", "/auth/token"] {
        for creds in [
            json!({"email": "alice@example.com", "password": "wrong"}),
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        ] {
            pair.post(path, &creds).await.expect_client_401(no_account.clone());
        }
        let r = pair.post(path, &json!({})).await;
        r.expect_json(400, json!({"email": ["This field is required."], "password": ["This field is required."]}));
    }
    for path in ["/auth/token/refresh/", "/auth/token/refresh"] {
        let r = pair.post(path, &json!({})).await;
        r.expect_json(400, json!({"refresh": ["This field is required."]}));
        let r = pair.post(path, &json!({"refresh": "garbage"})).await;
        r.expect_client_401(json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}));
    }
    let (_, access) = pair.login("alice@example.com").await;
    let r = pair.post("/auth/token/refresh/", &json!({"refresh": access})).await;
    r.expect_client_401(json!({"detail": "Token has wrong type", "code": "token_not_valid"}));
    let r = pair.post("/auth/token/verify/", &json!({"token": "garbage"})).await;
    r.expect_client_401(json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}));

    // Malformed JSON: DRF's parse error shape.
    let r = pair
        .http
        .post(format!("{}/auth/token/", pair.client_url))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().starts_with("JSON parse error - "), "{v}");

    // The legacy user route: someone else's id is not yours.
    let other = pair.add_user("bob@example.com", &[]).await;
    let r = pair.get(&format!("/auth/users/{other}/"), &access).await;
    r.expect_json(403, json!({"detail": "You do not have permission to perform this action."}));
    // The current-user route without credentials.
    pair.get_with("/auth/user/", &[])
        .await
        .expect_client_401(json!({"detail": "Authentication credentials were not provided."}));

    pair.get_with("/nope/", &[]).await.expect_json(404, json!({"detail": "Not found."}));
    let r = pair.get_with("/auth/token/", &[]).await;
    r.expect_json(405, json!({"detail": "Method \"GET\" not allowed."}));
    pair.finish().await;
}

per_mode!(
    curl_walkthrough_through_the_client => curl_walkthrough_through_the_client_local,
        curl_walkthrough_through_the_client_remote;
    logout_through_the_client_blacklists_the_refresh_token => logout_blacklists_the_refresh_token_local,
        logout_blacklists_the_refresh_token_remote;
);

both_backends!(
    auth_service_refusals_pass_through_the_client,
    curl_walkthrough_through_the_client_local,
    curl_walkthrough_through_the_client_remote,
    logout_blacklists_the_refresh_token_local,
    logout_blacklists_the_refresh_token_remote,
);
