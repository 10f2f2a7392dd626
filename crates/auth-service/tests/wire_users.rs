//! The user endpoints (`/auth/user/`, legacy `/auth/users/{id}/`) and every bearer-header case
//! of SimpleJWT's `JWTAuthentication` (reference §1.5), answered as 401 with `WWW-Authenticate`.

mod common;

use auth_service::store::NewUser;
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use shared_user::both_backends;
use shared_user::testing::Backend;
use shared_user::user::format_datetime;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const PW: &str = "correct horse battery";
const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const BAD_HEADER: &str =
    r#"{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}"#;
const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;

/// The exact `/auth/user/` body of a stored user.
async fn user_json(app: &TestApp, id: i64) -> String {
    serde_json::to_string(&app.state.store.find_user(id).await.unwrap().unwrap()).unwrap()
}

async fn current_user_is_the_token_owner_byte_exact(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &["ops", "billing:admin"]).await;
    let (_, access) = app.login(ALICE, PW).await;
    let user = app.state.store.find_user(id).await.unwrap().unwrap();
    let expected = format!(
        concat!(
            r#"{{"id":{},"email":"alice@example.com","first_name":"","last_name":"","date_joined":"{}","#,
            r#""last_login":"{}","is_active":true,"is_staff":false,"is_superuser":false,"#,
            r#""accessgroup":{{"user_type":"admin"}},"#,
            r#""access_groups":[{{"name":"billing","level":"admin"}},{{"name":"ops","level":null}}]}}"#
        ),
        id,
        format_datetime(&user.date_joined),
        format_datetime(&user.last_login.expect("login recorded")),
    );
    assert_json(&app.get_bearer("/auth/user/", &access).await, StatusCode::OK, &expected);

    let bob = app.add_user(BOB, PW, false, &[]).await;
    let (_, access) = app.login(BOB, PW).await;
    let r = app.get_bearer("/auth/user/", &access).await;
    assert_json(&r, StatusCode::OK, &user_json(&app, bob).await);
    assert!(r.text.contains(r#""accessgroup":null,"access_groups":[]}"#), "{}", r.text);
    assert!(!r.text.contains("password") && !r.text.contains("argon2"));
}

async fn user_by_id_gives_your_own_record_and_refuses_others(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let alice = app.add_user(ALICE, PW, false, &[]).await;
    let bob = app.add_user(BOB, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    let own = app.get_bearer(&format!("/auth/users/{alice}/"), &access).await;
    assert_json(&own, StatusCode::OK, &user_json(&app, alice).await);
    assert_eq!(own.text, app.get_bearer("/auth/user/", &access).await.text);
    let r = app.get_bearer(&format!("/auth/users/{bob}/"), &access).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    assert_eq!(r.header("www-authenticate"), None);
    // Not staff: an unknown id is refused the same way, so ids cannot be probed.
    assert_json(&app.get_bearer("/auth/users/999999/", &access).await, StatusCode::FORBIDDEN, FORBIDDEN);
}

async fn staff_and_superusers_read_any_user_and_get_404_for_unknown_ids(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let alice = app.add_user(ALICE, PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let hash = app.state.hasher.hash(PW.into()).await.unwrap();
    let root = NewUser {
        email: "root@example.com".into(),
        password_hash: hash,
        first_name: "Root".into(),
        last_name: String::new(),
        is_staff: false,
        is_superuser: true,
        groups: vec![],
    };
    app.state.store.create_user(root).await.unwrap();
    for admin in ["staff@example.com", "root@example.com"] {
        let (_, access) = app.login(admin, PW).await;
        let r = app.get_bearer(&format!("/auth/users/{alice}/"), &access).await;
        assert_json(&r, StatusCode::OK, &user_json(&app, alice).await);
        assert_json(&app.get_bearer("/auth/users/999999/", &access).await, StatusCode::NOT_FOUND, NOT_FOUND);
    }
}

async fn user_by_non_integer_id_is_404(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let alice = app.add_user(ALICE, PW, false, &[]).await;
    for who in [ALICE, "staff@example.com"] {
        let (_, access) = app.login(who, PW).await;
        // Django's `<int:id>` matches digits only: no sign, no spaces, no fraction.
        for path in [
            "/auth/users/abc/".to_owned(),
            "/auth/users/1.5/".to_owned(),
            "/auth/users/%20/".to_owned(),
            "/auth/users/99999999999999999999/".to_owned(),
            format!("/auth/users/+{alice}/"),
            format!("/auth/users/%2B{alice}/"),
            format!("/auth/users/-{alice}/"),
            format!("/auth/users/%20{alice}/"),
        ] {
            assert_json(&app.get_bearer(&path, &access).await, StatusCode::NOT_FOUND, NOT_FOUND);
        }
        // Leading zeros are still the number, as in Django.
        let r = app.get_bearer(&format!("/auth/users/0{alice}/"), &access).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

async fn no_authorization_header_is_credentials_not_provided(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    for path in ["/auth/user/", &format!("/auth/users/{id}/"), "/auth/users/abc/"] {
        assert_401(&app.get_with(path, &[]).await, NOT_PROVIDED);
    }
}

async fn other_schemes_and_lowercase_bearer_count_as_no_credentials(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    for value in [
        format!("bearer {access}"),
        format!("BEARER {access}"),
        format!("Token {access}"),
        format!("JWT {access}"),
        format!("Bearer: {access}"),
        "Basic YWxpY2U6cHc=".to_owned(),
        access.clone(),
        String::new(),
    ] {
        let r = app.get_with("/auth/user/", &[("authorization", &value)]).await;
        assert_eq!(r.text, NOT_PROVIDED, "{value:?}");
        assert_401(&r, NOT_PROVIDED);
    }
}

async fn bearer_without_a_token_or_with_two_is_a_bad_authorization_header(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    for value in ["Bearer".to_owned(), "Bearer   ".to_owned(), "Bearer a b".to_owned(), format!("Bearer {access} x")] {
        let r = app.get_with("/auth/user/", &[("authorization", &value)]).await;
        assert_eq!(r.text, BAD_HEADER, "{value:?}");
        assert_401(&r, BAD_HEADER);
    }
}

async fn bad_bearer_tokens_get_the_token_not_valid_envelope(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let mut expired = claims("access", id);
    expired["exp"] = json!(now() - 1);
    let other_key = shared_user::jsonwebtoken::encode(
        &shared_user::jsonwebtoken::Header::default(),
        &claims("access", id),
        &shared_user::jsonwebtoken::EncodingKey::from_secret(b"another-key-another-key-another-key!"),
    )
    .unwrap();
    for token in ["garbage".to_owned(), craft(&expired), other_key] {
        assert_401(&app.get_bearer("/auth/user/", &token).await, &bearer_not_valid("Token is invalid or expired"));
    }
}

async fn refresh_token_as_bearer_has_wrong_type(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (refresh, _) = app.login(ALICE, PW).await;
    assert_401(&app.get_bearer("/auth/user/", &refresh).await, &bearer_not_valid("Token has wrong type"));
    let r = app.get_bearer(&format!("/auth/users/{id}/"), &refresh).await;
    assert_401(&r, &bearer_not_valid("Token has wrong type"));
}

async fn bearer_without_token_type_has_no_type(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let mut untyped = claims("access", id);
    untyped.as_object_mut().unwrap().remove("token_type");
    assert_401(&app.get_bearer("/auth/user/", &craft(&untyped)).await, &bearer_not_valid("Token has no type"));
}

async fn bearer_without_user_id_has_no_recognizable_identification(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let mut anonymous = claims("access", 1);
    anonymous.as_object_mut().unwrap().remove("user_id");
    let r = app.get_bearer("/auth/user/", &craft(&anonymous)).await;
    assert_401(&r, r#"{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}"#);
}

async fn bearer_of_a_deleted_or_unknown_user_is_user_not_found(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    app.delete_user(id).await;
    let not_found = r#"{"detail":"User not found","code":"user_not_found"}"#;
    assert_401(&app.get_bearer("/auth/user/", &access).await, not_found);
    assert_401(&app.get_bearer("/auth/user/", &craft(&claims("access", 424_242))).await, not_found);
}

async fn bearer_of_an_inactive_user_is_user_inactive(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    app.set_active(id, false).await;
    let inactive = r#"{"detail":"User is inactive","code":"user_inactive"}"#;
    assert_401(&app.get_bearer("/auth/user/", &access).await, inactive);
    assert_401(&app.get_bearer(&format!("/auth/users/{id}/"), &access).await, inactive);
}

async fn bearer_tolerates_extra_spaces_and_a_string_user_id(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (_, access) = app.login(ALICE, PW).await;
    let expected = user_json(&app, id).await;
    let r = app.get_with("/auth/user/", &[("authorization", &format!("Bearer  {access} "))]).await;
    assert_json(&r, StatusCode::OK, &expected);
    let mut text_id = claims("access", id);
    text_id["user_id"] = json!(id.to_string());
    assert_json(&app.get_bearer("/auth/user/", &craft(&text_id)).await, StatusCode::OK, &expected);
}

async fn configured_header_name_and_schemes_are_honoured(backend: Backend) {
    for name in ["X-Auth-Token", "HTTP_X_AUTH_TOKEN"] {
        let flags = ["--auth-header-types", "JWT,Bearer", "--auth-header-name", name];
        let Some(app) = TestApp::new(backend, &flags).await else { return };
        let id = app.add_user(ALICE, PW, false, &[]).await;
        let (_, access) = app.login(ALICE, PW).await;
        let expected = user_json(&app, id).await;
        for scheme in ["JWT", "Bearer"] {
            let r = app.get_with("/auth/user/", &[("x-auth-token", &format!("{scheme} {access}"))]).await;
            assert_json(&r, StatusCode::OK, &expected);
        }
        // The standard header is not looked at any more; 401s name the first scheme.
        let r = app.get_with("/auth/user/", &[("authorization", &format!("Bearer {access}"))]).await;
        assert_json(&r, StatusCode::UNAUTHORIZED, NOT_PROVIDED);
        assert_eq!(r.header("www-authenticate"), Some(r#"JWT realm="api""#));
        let r = app.post("/auth/token/", &json!({"email": ALICE, "password": "nope"}).to_string()).await;
        assert_eq!(r.header("www-authenticate"), Some(r#"JWT realm="api""#));
    }
}

both_backends!(
    current_user_is_the_token_owner_byte_exact,
    user_by_id_gives_your_own_record_and_refuses_others,
    staff_and_superusers_read_any_user_and_get_404_for_unknown_ids,
    user_by_non_integer_id_is_404,
    no_authorization_header_is_credentials_not_provided,
    other_schemes_and_lowercase_bearer_count_as_no_credentials,
    bearer_without_a_token_or_with_two_is_a_bad_authorization_header,
    bad_bearer_tokens_get_the_token_not_valid_envelope,
    refresh_token_as_bearer_has_wrong_type,
    bearer_without_token_type_has_no_type,
    bearer_without_user_id_has_no_recognizable_identification,
    bearer_of_a_deleted_or_unknown_user_is_user_not_found,
    bearer_of_an_inactive_user_is_user_inactive,
    bearer_tolerates_extra_spaces_and_a_string_user_id,
    configured_header_name_and_schemes_are_honoured,
);
