//! NUL, control and bidirectional formatting characters in emails, names, group names,
//! searches and session ids: a 400 field error (404 for a session id) on every front end,
//! never a 500 (PostgreSQL cannot store or even compare a NUL), and nothing written.

mod common;

use auth_service::store::NewUser;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const STRONG: &str = "Plenty-of-entropy-93!";
const NUL_EMAIL: &str = "a\u{0}@example.com";
const NULL_CHARACTERS: &str = "Null characters are not allowed.";
const CONTROL: &str = "Control characters and bidirectional formatting characters are not allowed.";

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::new(backend, &["--allow-create-user", "open", "--users-reader-group", "manager"]).await
}

async fn users(app: &TestApp) -> usize {
    app.state.store.list_users().await.unwrap().len()
}

async fn gql(app: &TestApp, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables}).to_string();
    let r = app.send(Method::POST, "/graphql/", Some(&body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string());
    app.send(method, path, body.as_deref(), &[("authorization", auth.as_str())]).await
}

/// A login with a NUL in the email answers like any bad input on every login path (REST
/// obtain, password change, GraphQL `tokenAuth`, the Hasura login action): a 400 field error,
/// not the 500 PostgreSQL's refusal used to give, and no throttle counter is written for it.
async fn a_nul_in_a_login_email_is_a_field_error_everywhere(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("alice@example.com", PW, false, &[]).await;

    let r = app.post("/auth/token/", &json!({"email": NUL_EMAIL, "password": PW}).to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", NULL_CHARACTERS));
    let r = app.post("/auth/token/", &json!({"email": "alice\u{202E}@example.com", "password": PW}).to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", CONTROL));
    let r =
        app.send_typed("/auth/token/", Some("application/x-www-form-urlencoded"), "email=a%00%40b.io&password=x").await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", NULL_CHARACTERS));

    let change = json!({"email": NUL_EMAIL, "password": PW, "new_password": STRONG});
    let r = app.post("/auth/password-change/", &change.to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", NULL_CHARACTERS));

    let v = gql(&app, "mutation($e:String!){tokenAuth(email:$e,password:\"x\"){token}}", json!({"e": NUL_EMAIL})).await;
    assert_eq!(v["data"]["tokenAuth"], Value::Null, "{v}");
    assert_eq!(v["errors"][0]["message"], json!(format!("email: {NULL_CHARACTERS}")), "{v}");
    assert_eq!(v["errors"][0]["extensions"]["email"], json!([NULL_CHARACTERS]), "{v}");

    let r =
        app.post("/hasura/actions/login/", &json!({"input": {"email": NUL_EMAIL, "password": PW}}).to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": format!("email: {NULL_CHARACTERS}"), "extensions": {"email": [NULL_CHARACTERS]}})
    );

    assert!(throttle_keys(&app).await.is_empty(), "nothing counted for an email no account has");
    // The account itself still signs in.
    app.login("alice@example.com", PW).await;
}

/// Every signup path (REST, GraphQL `createUser`, the Hasura action) refuses control and
/// bidirectional formatting characters in the email and the names, with every problem in one
/// answer, and creates nobody.
async fn signups_refuse_control_and_bidi_characters(backend: Backend) {
    let Some(app) = app(backend).await else { return };

    let body = json!({"email": NUL_EMAIL, "password": STRONG, "first_name": "\u{202E}nimda", "last_name": "a\u{0}"});
    let r = app.post("/auth/create-user/", &body.to_string()).await;
    let expected = json!({"email": [NULL_CHARACTERS], "first_name": [CONTROL], "last_name": [NULL_CHARACTERS]});
    assert_eq!((r.status, r.json()), (StatusCode::BAD_REQUEST, expected));
    let body = json!({"email": "bob@example.com", "password": STRONG, "first_name": "Bob\nSmith"});
    let r = app.post("/auth/create-user/", &body.to_string()).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("first_name", CONTROL));

    let v = gql(
        &app,
        "mutation($e:String!,$l:String){createUser(email:$e,password:\"Plenty-of-entropy-93!\",lastName:$l){token}}",
        json!({"e": "carol@example.com", "l": "x\u{0}y"}),
    )
    .await;
    assert_eq!(v["errors"][0]["extensions"]["last_name"], json!([NULL_CHARACTERS]), "{v}");

    let input = json!({"input": {"email": "dave@example.com", "password": STRONG, "firstName": "\u{2066}x"}});
    let r = app.post("/hasura/actions/signup/", &input.to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json()["extensions"], json!({"first_name": [CONTROL]}));

    assert_eq!(users(&app).await, 0, "nobody created");
    // Letters of every script stay welcome.
    let body = json!({"email": "zoe@example.com", "password": STRONG, "first_name": "Zoë", "last_name": "عربي"});
    assert_eq!(app.post("/auth/create-user/", &body.to_string()).await.status, StatusCode::CREATED);
}

/// The admin API: creation, patches (names and group names), `?search=` and session ids in the
/// path; a field error each (404 for a session id, which names no session), nothing written.
async fn the_admin_api_refuses_them_in_bodies_searches_and_paths(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
    let new = NewUser {
        email: "root@example.com".into(),
        password_hash: hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    app.state.store.create_user(new).await.unwrap();
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (_, root) = app.login("root@example.com", PW).await;

    let body = json!({"email": "eve@example.com", "password": STRONG, "first_name": "e\u{0}ve"});
    let r = call(&app, Method::POST, "/auth/admin/users/", &root, Some(body)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("first_name", NULL_CHARACTERS));
    let body = json!({"email": NUL_EMAIL, "password": STRONG});
    let r = call(&app, Method::POST, "/auth/admin/users/", &root, Some(body)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("email", NULL_CHARACTERS));

    let page = format!("/auth/admin/users/{alice}/");
    let r = call(&app, Method::PATCH, &page, &root, Some(json!({"last_name": "\u{7}bell"}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("last_name", CONTROL));
    let r = call(&app, Method::PATCH, &page, &root, Some(json!({"first_name": "a\u{0}"}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("first_name", NULL_CHARACTERS));
    for groups in [json!(["ops\u{0}"]), json!([{"name": "ops", "level": "l\u{202E}"}])] {
        let r = call(&app, Method::PATCH, &page, &root, Some(json!({"access_groups": groups}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.json()["access_groups"].is_array(), "{}", r.text);
    }
    let stored = app.state.store.find_user(alice).await.unwrap().unwrap();
    assert_eq!((stored.first_name.as_str(), stored.last_name.as_str(), stored.access_groups.len()), ("", "", 0));

    for search in ["%00", "a%00b", "%E2%80%AE"] {
        let r = call(&app, Method::GET, &format!("/auth/admin/users/?search={search}"), &root, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{search}: {}", r.text);
        assert!(r.json()["search"].is_array(), "{}", r.text);
    }

    let r = call(&app, Method::DELETE, &format!("/auth/admin/users/{alice}/sessions/a%00b/"), &root, None).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    let (_, alice_access) = app.login("alice@example.com", PW).await;
    let r = call(&app, Method::DELETE, "/auth/sessions/%00/", &alice_access, None).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    let r = call(&app, Method::GET, "/auth/sessions/", &alice_access, None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "the session is still there");
}

both_backends!(
    a_nul_in_a_login_email_is_a_field_error_everywhere,
    signups_refuse_control_and_bidi_characters,
    the_admin_api_refuses_them_in_bodies_searches_and_paths,
);
