//! EasyJWT 1.1 parity through the client: cookie mode (refresh token in an HttpOnly cookie,
//! CSRF double-submit, origin allow-list), logout, and the proxied password change.

mod common;

use client_service::{ClientConfigBuilder, CookieConfig, VerifyMode};
use common::{Options, PASSWORD, Pair, Reply};
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";

fn cookie_mode(c: ClientConfigBuilder) -> ClientConfigBuilder {
    c.refresh_token_in_cookie(CookieConfig::default().allowed_origins(["https://app.example"]))
}

async fn pair(backend: Backend) -> Option<Pair> {
    let options = Options::new(VerifyMode::Local).auth(|s| s.rotate_refresh_tokens = true).configure(cookie_mode);
    let p = Pair::start(backend, options).await?;
    p.add_user(ALICE, &[]).await;
    Some(p)
}

/// The value of cookie `name` set by a reply, with its attributes.
fn set_cookie<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|v| v.starts_with(&format!("{name}=")))
}

fn value_of(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

async fn csrf(p: &Pair) -> String {
    let r = p.get_with("/auth/csrf/", &[]).await;
    r.expect_json(200, json!({"detail": "CSRF cookie set."}));
    value_of(set_cookie(&r, "csrftoken").expect("csrftoken cookie")).to_owned()
}

async fn cookie_login_puts_the_refresh_token_in_an_httponly_cookie(backend: Backend) {
    let Some(p) = pair(backend).await else { return };
    let creds = json!({"email": ALICE, "password": PASSWORD});
    // Without the CSRF pair: refused before anything is forwarded.
    p.counter.reset();
    p.post("/auth/token/", &creds).await.expect_json(403, json!({"detail": "CSRF Failed: CSRF cookie not set."}));
    let token = csrf(&p).await;
    let cookie = format!("csrftoken={token}");
    p.post_with("/auth/token/", &creds, &[("cookie", &cookie)])
        .await
        .expect_json(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    p.post_with("/auth/token/", &creds, &[("cookie", &cookie), ("x-csrftoken", "wrong")])
        .await
        .expect_json(403, json!({"detail": "CSRF Failed: CSRF token incorrect."}));
    let headers = [("cookie", cookie.as_str()), ("x-csrftoken", token.as_str()), ("origin", "https://evil.example")];
    p.post_with("/auth/token/", &creds, &headers).await.expect_json(403, json!({"detail": "Disallowed origin."}));
    assert_eq!(p.counter.total(), 0, "a refused login reached the auth-service: {:?}", p.counter.snapshot());

    let headers = [("cookie", cookie.as_str()), ("x-csrftoken", token.as_str()), ("origin", "https://app.example")];
    let r = p.post_with("/auth/token/", &creds, &headers).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), vec!["access"], "the refresh token is not in the body");
    let set = set_cookie(&r, "refresh_token").expect("refresh cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let access = r.json()["access"].as_str().unwrap().to_owned();
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    p.finish().await;
}

async fn cookie_refresh_reads_and_rotates_the_cookie_and_logout_clears_it(backend: Backend) {
    let Some(p) = pair(backend).await else { return };
    let token = csrf(&p).await;
    let csrf_cookie = format!("csrftoken={token}");
    let headers = [("cookie", csrf_cookie.as_str()), ("x-csrftoken", token.as_str())];
    let r = p.post_with("/auth/token/", &json!({"email": ALICE, "password": PASSWORD}), &headers).await;
    let refresh = value_of(set_cookie(&r, "refresh_token").unwrap()).to_owned();

    // No refresh cookie: 401 in the EasyJWT wording.
    p.post_with("/auth/token/refresh/", &json!({}), &headers)
        .await
        .expect_client_401(json!({"detail": "No refresh token provided."}));

    let both = format!("csrftoken={token}; refresh_token={refresh}");
    let with_cookie = [("cookie", both.as_str()), ("x-csrftoken", token.as_str())];
    let r = p.post_with("/auth/token/refresh/", &json!({}), &with_cookie).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), vec!["access"]);
    let rotated = value_of(set_cookie(&r, "refresh_token").expect("rotated cookie")).to_owned();
    assert_ne!(rotated, refresh);

    // Logout blacklists the cookie's token and clears the cookie.
    let now = format!("csrftoken={token}; refresh_token={rotated}");
    let with_rotated = [("cookie", now.as_str()), ("x-csrftoken", token.as_str())];
    let r = p.post_with("/auth/token/logout/", &json!({}), &with_rotated).await;
    r.expect_json(200, json!({"detail": "Logged out."}));
    let cleared = set_cookie(&r, "refresh_token").expect("clearing cookie");
    assert!(cleared.starts_with("refresh_token=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let r = p.post_with("/auth/token/refresh/", &json!({}), &with_rotated).await;
    r.expect_client_401(json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
    p.finish().await;
}

async fn password_change_through_the_client_revokes_old_refresh_tokens(backend: Backend) {
    let Some(p) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    p.add_user(ALICE, &[]).await;
    let (refresh, _) = p.login(ALICE).await;
    let change = json!({"email": ALICE, "password": "not it", "new_password": "An0ther-good-passphrase"});
    p.post("/auth/password-change/", &change)
        .await
        .expect_json(400, json!({"non_field_errors": ["Invalid credentials."]}));
    let change = json!({"email": ALICE, "password": PASSWORD, "new_password": "An0ther-good-passphrase"});
    p.post("/auth/password-change", &change).await.expect_json(200, json!({}));
    p.post("/auth/token/refresh/", &json!({"refresh": refresh}))
        .await
        .expect_client_401(json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
    let r = p.post("/auth/token/", &json!({"email": ALICE, "password": "An0ther-good-passphrase"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    p.finish().await;
}

async fn cookie_endpoints_do_not_exist_in_body_mode(backend: Backend) {
    let Some(p) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    p.get_with("/auth/csrf/", &[]).await.expect_json(404, json!({"detail": "Not found."}));
    p.finish().await;
}

#[track_caller]
fn assert_no_store(r: &Reply, what: &str) {
    assert_eq!((r.header("cache-control"), r.header("pragma")), ("no-store", "no-cache"), "{what}");
}

/// The auth-service's `Cache-Control: no-store` and `Pragma: no-cache` reach the browser
/// through the client on every answer carrying a token: obtain and refresh in body mode, and
/// in cookie mode, where the client rewrites the body.
async fn answers_carrying_tokens_stay_uncached_through_the_client(backend: Backend) {
    let Some(body_mode) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    body_mode.add_user(ALICE, &[]).await;
    let r = body_mode.post("/auth/token/", &json!({"email": ALICE, "password": PASSWORD})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_store(&r, "obtain");
    let r = body_mode.post("/auth/token/refresh/", &json!({"refresh": r.json()["refresh"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_store(&r, "refresh");
    body_mode.finish().await;

    let Some(p) = pair(backend).await else { return };
    let token = csrf(&p).await;
    let cookie = format!("csrftoken={token}");
    let headers = [("cookie", cookie.as_str()), ("x-csrftoken", token.as_str()), ("origin", "https://app.example")];
    let r = p.post_with("/auth/token/", &json!({"email": ALICE, "password": PASSWORD}), &headers).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_store(&r, "cookie-mode obtain");
    let refresh = value_of(set_cookie(&r, "refresh_token").unwrap()).to_owned();
    let both = format!("csrftoken={token}; refresh_token={refresh}");
    let headers = [("cookie", both.as_str()), ("x-csrftoken", token.as_str()), ("origin", "https://app.example")];
    let r = p.post_with("/auth/token/refresh/", &json!({}), &headers).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_store(&r, "cookie-mode refresh");
}

both_backends!(
    answers_carrying_tokens_stay_uncached_through_the_client,
    cookie_login_puts_the_refresh_token_in_an_httponly_cookie,
    cookie_refresh_reads_and_rotates_the_cookie_and_logout_clears_it,
    password_change_through_the_client_revokes_old_refresh_tokens,
    cookie_endpoints_do_not_exist_in_body_mode,
);
