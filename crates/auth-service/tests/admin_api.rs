//! The admin API under `/auth/admin/`: permissions (staff, superuser, reader group), users
//! listed/searched/paged, created, read, patched, passwords set, sessions listed and ended,
//! the audit log; every change audited and the revocations it must cause.

mod common;

use auth_service::store::NewUser;
use auth_service::store::audit::AuditFilter;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const BLACKLISTED: &str = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;
const NO_CREDENTIALS: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const INACTIVE: &str = r#"{"detail":"User is inactive","code":"user_inactive"}"#;
const FEED_TOKEN: &str = "feed-token-0123456789abcdef";

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::new(backend, &["--users-reader-group", "manager", "--revocation-feed-token", FEED_TOKEN]).await
}

/// The user ids the revocation feed publishes, in order.
async fn feed_users(app: &TestApp) -> Vec<i64> {
    let r = app.get_with("/auth/revocations/?after=0", &[("x-revocation-feed-token", FEED_TOKEN)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["revocations"].as_array().expect("a list").iter().map(|e| e["user_id"].as_i64().unwrap()).collect()
}

/// Adds a superuser; returns its id.
async fn add_superuser(app: &TestApp, email: &str) -> i64 {
    let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
    let new = NewUser {
        email: email.into(),
        password_hash: hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    app.state.store.create_user(new).await.unwrap().id
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string());
    app.send(method, path, body.as_deref(), &[("authorization", auth.as_str())]).await
}

async fn audit_kinds(app: &TestApp, user_id: i64) -> Vec<(String, Option<i64>)> {
    let filter = AuditFilter { user_id: Some(user_id), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    rows.into_iter().rev().map(|r| (r.kind, r.actor_id)).collect()
}

/// No token is 401, an ordinary user 403 everywhere; a reader (`USERS_READER_GROUP`) reads
/// users and sessions but changes nothing and may not read the audit log.
async fn permissions_follow_staff_and_reader_roles(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("manager@example.com", PW, false, &["manager"]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (_, user) = app.login("alice@example.com", PW).await;
    let (_, reader) = app.login("manager@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;

    let r = app.get_with("/auth/admin/users/", &[]).await;
    assert_401(&r, r#"{"detail":"Authentication credentials were not provided."}"#);
    for path in ["/auth/admin/users/", &format!("/auth/admin/users/{alice}/"), "/auth/admin/audit/"] {
        assert_json(&call(&app, Method::GET, path, &user, None).await, StatusCode::FORBIDDEN, FORBIDDEN);
    }

    for path in
        ["/auth/admin/users", &format!("/auth/admin/users/{alice}"), &format!("/auth/admin/users/{alice}/sessions/")]
    {
        let r = call(&app, Method::GET, path, &reader, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let patch = json!({"first_name": "Eve"});
    let writes = [
        (Method::PATCH, format!("/auth/admin/users/{alice}/"), Some(patch.clone())),
        (Method::POST, format!("/auth/admin/users/{alice}/set-password/"), Some(json!({"password": "x"}))),
        (Method::DELETE, format!("/auth/admin/users/{alice}/sessions/"), None),
        (Method::POST, "/auth/admin/users/".to_owned(), Some(json!({"email": "new@example.com", "password": PW}))),
        (Method::GET, "/auth/admin/audit/".to_owned(), None),
    ];
    for (method, path, body) in writes {
        let r = call(&app, method.clone(), &path, &reader, body).await;
        assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    }
    assert_eq!(app.state.store.find_user(alice).await.unwrap().unwrap().first_name, "");

    let r = call(&app, Method::PATCH, &format!("/auth/admin/users/{alice}/"), &staff, Some(patch)).await;
    assert_eq!((r.status, r.json()["first_name"].clone()), (StatusCode::OK, json!("Eve")), "{}", r.text);
    let r = call(&app, Method::GET, "/auth/admin/users/999999/", &staff, None).await;
    assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    let r = call(&app, Method::GET, "/auth/admin/users/-1/", &staff, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// DRF's PageNumberPagination: 25 a page, `next`/`previous` relative to the host (whatever
/// `Host` says), `?search=` over email
/// and names (case-insensitive, wildcards taken literally), 404 "Invalid page." past the end.
async fn users_are_listed_searched_and_paged(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    for i in 0..29 {
        app.add_user_with_hash(&format!("user{i:02}@example.com"), "!").await;
    }
    let (_, staff) = app.login("staff@example.com", PW).await;
    let host = [("authorization", format!("Bearer {staff}")), ("host", "auth.internal:8000".to_owned())];
    let headers: Vec<(&str, &str)> = host.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let r = app.send(Method::GET, "/auth/admin/users/", None, &headers).await;
    let v = r.json();
    assert_eq!((v["count"].clone(), v["results"].as_array().unwrap().len()), (json!(30), 25));
    assert_eq!(v["next"], json!("/auth/admin/users/?page=2"));
    assert_eq!(v["previous"], Value::Null);
    assert_eq!(v["results"][0]["email"], json!("staff@example.com"));
    assert!(v["results"][0].get("password").is_none());

    let r = app.send(Method::GET, "/auth/admin/users?page=2", None, &headers).await;
    let v = r.json();
    assert_eq!((v["count"].clone(), v["results"].as_array().unwrap().len()), (json!(30), 5));
    assert_eq!(v["next"], Value::Null);
    assert_eq!(v["previous"], json!("/auth/admin/users/"));

    for bad in ["3", "0", "abc", "-1"] {
        let r = app.send(Method::GET, &format!("/auth/admin/users/?page={bad}"), None, &headers).await;
        assert_json(&r, StatusCode::NOT_FOUND, r#"{"detail":"Invalid page."}"#);
    }

    let r = call(&app, Method::GET, "/auth/admin/users/?search=USER0", &staff, None).await;
    let emails: Vec<Value> = r.json()["results"].as_array().unwrap().iter().map(|u| u["email"].clone()).collect();
    assert_eq!(emails.len(), 10, "{emails:?}");
    let r = call(&app, Method::GET, "/auth/admin/users/?search=%25", &staff, None).await;
    assert_eq!(r.json()["count"], json!(0), "a % is literal");
    let r = call(&app, Method::GET, "/auth/admin/users/?search=_", &staff, None).await;
    assert_eq!(r.json()["count"], json!(0), "an _ is literal");
}

/// Each listed user carries its own access groups, sorted by name, and a user without any an
/// empty list: the page's groups are read in one query and handed out by user.
async fn each_listed_user_carries_its_own_access_groups(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let users: [(&str, &[&str]); 6] = [
        ("a@example.com", &["zeta", "alpha:1"]),
        ("b@example.com", &[]),
        ("c@example.com", &["billing:admin"]),
        ("d@example.com", &[]),
        ("e@example.com", &["support", "billing:2", "audit"]),
        ("f@example.com", &[]),
    ];
    for (email, groups) in users {
        app.add_user(email, "!", false, groups).await;
    }
    let (_, staff) = app.login("staff@example.com", PW).await;
    let r = call(&app, Method::GET, "/auth/admin/users/", &staff, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed: Vec<(String, Value)> = r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap().to_owned(), u["access_groups"].clone()))
        .collect();
    let g = |name: &str, level: Option<&str>| json!({"name": name, "level": level});
    assert_eq!(
        listed,
        vec![
            ("staff@example.com".to_owned(), json!([])),
            ("a@example.com".to_owned(), json!([g("alpha", Some("1")), g("zeta", None)])),
            ("b@example.com".to_owned(), json!([])),
            ("c@example.com".to_owned(), json!([g("billing", Some("admin"))])),
            ("d@example.com".to_owned(), json!([])),
            ("e@example.com".to_owned(), json!([g("audit", None), g("billing", Some("2")), g("support", None)])),
            ("f@example.com".to_owned(), json!([])),
        ]
    );
    // A search's page too (the substring path): the groups follow their users.
    let r = call(&app, Method::GET, "/auth/admin/users/?search=e%40exa", &staff, None).await;
    assert_eq!(
        r.json()["results"][0]["access_groups"],
        json!([g("audit", None), g("billing", Some("2")), g("support", None)])
    );
}

/// Creating users: signup's validation (DRF field map), flags and groups; granting staff or
/// superuser needs a superuser; each creation is audited with its actor.
async fn users_are_created_with_signup_rules(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let staff_id = app.add_user("staff@example.com", PW, true, &[]).await;
    add_superuser(&app, "root@example.com").await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;

    let r =
        call(&app, Method::POST, "/auth/admin/users/", &staff, Some(json!({"email": "bad", "password": "123"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["email"], json!(["Enter a valid email address."]));
    assert!(v["password"].as_array().unwrap().len() >= 2, "{v}");
    let r = call(&app, Method::POST, "/auth/admin/users/", &staff, Some(json!({"is_staff": "maybe"}))).await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"email":["This field is required."],"password":["This field is required."],"is_staff":["Must be a valid boolean."]}"#,
    );

    let body = json!({"email": " Bob@Example.com ", "password": PW, "first_name": "Bob",
        "access_groups": [{"name": "billing", "level": "admin"}, "support"]});
    let r = call(&app, Method::POST, "/auth/admin/users/", &staff, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v = r.json();
    assert_eq!(v["email"], json!("bob@example.com"));
    assert_eq!(v["access_groups"], json!([{"name": "billing", "level": "admin"}, {"name": "support", "level": null}]));
    let bob = v["id"].as_i64().unwrap();
    assert_eq!(audit_kinds(&app, bob).await, [("user_created".into(), Some(staff_id))], "one event, with its actor");
    let r = call(&app, Method::POST, "/auth/admin/users/", &staff, Some(body)).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"email":["This email already exists."]}"#);

    let admin = json!({"email": "carol@example.com", "password": PW, "is_staff": true});
    assert_json(
        &call(&app, Method::POST, "/auth/admin/users/", &staff, Some(admin.clone())).await,
        StatusCode::FORBIDDEN,
        FORBIDDEN,
    );
    assert!(app.state.store.find_by_email("carol@example.com").await.unwrap().is_none());
    let r = call(&app, Method::POST, "/auth/admin/users", &root, Some(admin)).await;
    assert_eq!((r.status, r.json()["is_staff"].clone()), (StatusCode::CREATED, json!(true)), "{}", r.text);
}

/// PATCH: names, groups, flags (superuser only), type errors in DRF's shape, a superuser's
/// account out of a staff member's reach, no self-deactivation; deactivation refuses the
/// user's tokens at once and is audited with its actor.
async fn users_are_patched_and_deactivation_ends_sessions(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let staff_id = app.add_user("staff@example.com", PW, true, &[]).await;
    let root_id = add_superuser(&app, "root@example.com").await;
    let (alice_refresh, alice_access) = app.login("alice@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;
    let path = format!("/auth/admin/users/{alice}/");

    let r = call(
        &app,
        Method::PATCH,
        &path,
        &staff,
        Some(json!({"last_name": "Liddell", "access_groups": ["billing:2"], "email": "ignored"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!((v["last_name"].clone(), v["email"].clone()), (json!("Liddell"), json!("alice@example.com")));
    assert_eq!(v["access_groups"], json!([{"name": "billing", "level": "2"}]));

    let bad = json!({"is_active": "perhaps", "first_name": 3, "access_groups": "billing"});
    assert_json(
        &call(&app, Method::PATCH, &path, &staff, Some(bad)).await,
        StatusCode::BAD_REQUEST,
        r#"{"first_name":["Not a valid string."],"is_active":["Must be a valid boolean."],"access_groups":["Expected a list of items but got type \"str\"."]}"#,
    );
    let r = call(
        &app,
        Method::PATCH,
        &path,
        &staff,
        Some(json!({"access_groups": ["a", "a:1"], "last_name": "x".repeat(151)})),
    )
    .await;
    assert_json(
        &r,
        StatusCode::BAD_REQUEST,
        r#"{"last_name":["Ensure this field has no more than 150 characters."],"access_groups":["The group \"a\" is given twice."]}"#,
    );
    for flag in ["is_staff", "is_superuser"] {
        let r = call(&app, Method::PATCH, &path, &staff, Some(json!({ flag: true }))).await;
        assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    }
    // Unchanged flags are not a grant.
    assert_eq!(call(&app, Method::PATCH, &path, &staff, Some(json!({"is_staff": false}))).await.status, StatusCode::OK);
    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{root_id}/"), &staff, Some(json!({"first_name": "R"})))
            .await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    // A staff account (one's own included) is a superuser's to change.
    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{staff_id}/"), &staff, Some(json!({"is_active": false})))
            .await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{root_id}/"), &root, Some(json!({"is_active": false})))
            .await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"is_active":["You cannot deactivate your own account."]}"#);
    let r = call(&app, Method::PATCH, &path, &root, Some(json!({"is_staff": true}))).await;
    assert_eq!((r.status, r.json()["is_staff"].clone()), (StatusCode::OK, json!(true)));

    let r = call(&app, Method::PATCH, &path, &root, Some(json!({"is_active": false}))).await;
    assert_eq!((r.status, r.json()["is_active"].clone()), (StatusCode::OK, json!(false)));
    assert_401(
        &app.get_bearer("/auth/user/", &alice_access).await,
        r#"{"detail":"User is inactive","code":"user_inactive"}"#,
    );
    let r = app.post("/auth/token/refresh/", &json!({"refresh": alice_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = call(&app, Method::GET, &format!("{path}sessions/"), &root, None).await;
    assert_eq!(r.json(), json!([]));
    // Reactivated, the old tokens stay dead.
    call(&app, Method::PATCH, &path, &root, Some(json!({"is_active": true}))).await;
    assert_json(
        &app.post("/auth/token/refresh/", &json!({"refresh": alice_refresh}).to_string()).await,
        StatusCode::UNAUTHORIZED,
        BLACKLISTED,
    );

    let kinds = audit_kinds(&app, alice).await;
    assert!(kinds.contains(&("user_updated".into(), Some(staff_id))), "{kinds:?}");
    assert!(kinds.contains(&("logout_all".into(), Some(root_id))), "{kinds:?}");
}

/// set-password: signup's validators under "password", then every session of the user ends
/// and the new password works.
async fn passwords_are_set_and_end_sessions(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let staff_id = app.add_user("staff@example.com", PW, true, &[]).await;
    let (alice_refresh, _) = app.login("alice@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let path = format!("/auth/admin/users/{alice}/set-password/");

    assert_json(
        &call(&app, Method::POST, &path, &staff, Some(json!({}))).await,
        StatusCode::BAD_REQUEST,
        r#"{"password":["This field is required."]}"#,
    );
    let r = call(&app, Method::POST, &path, &staff, Some(json!({"password": "alice@example.com"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["password"][0].as_str().unwrap().contains("too similar"), "{}", r.text);
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/auth/admin/users/999999/set-password/",
            &staff,
            Some(json!({"password": "a fresh passphrase"}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let r = call(&app, Method::POST, &path, &staff, Some(json!({"password": "a fresh passphrase"}))).await;
    assert_json(&r, StatusCode::OK, "{}");
    assert_json(
        &app.post("/auth/token/refresh/", &json!({"refresh": alice_refresh}).to_string()).await,
        StatusCode::UNAUTHORIZED,
        BLACKLISTED,
    );
    app.login("alice@example.com", "a fresh passphrase").await;
    assert!(audit_kinds(&app, alice).await.contains(&("password_changed".into(), Some(staff_id))));
}

/// Sessions of a user: listed, one ended (404 for a stranger's or an unknown id), all ended.
async fn sessions_are_listed_and_ended(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (r1, _) = app.login("alice@example.com", PW).await;
    let (r2, _) = app.login("alice@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let path = format!("/auth/admin/users/{alice}/sessions/");

    let r = call(&app, Method::GET, &path, &staff, None).await;
    let ids: Vec<String> = r.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{}", r.text);
    assert!(ids.contains(&jti_of(&r1)));

    let r = call(&app, Method::DELETE, &format!("{path}{}/", jti_of(&r1)), &staff, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, Method::DELETE, &format!("{path}{}/", jti_of(&r1)), &staff, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post("/auth/token/refresh/", &json!({"refresh": r1}).to_string()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/auth/token/refresh/", &json!({"refresh": r2.clone()}).to_string()).await.status,
        StatusCode::OK
    );

    assert_eq!(call(&app, Method::DELETE, &path, &staff, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, Method::GET, &path, &staff, None).await.json(), json!([]));
    assert_eq!(
        app.post("/auth/token/refresh/", &json!({"refresh": r2}).to_string()).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The audit log: newest first, filtered by user and kind, paged with `before`; bad filters
/// are field errors.
async fn audit_log_is_filtered_and_paged(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    app.login("alice@example.com", PW).await;
    app.login("alice@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;

    let r =
        call(&app, Method::GET, &format!("/auth/admin/audit/?user={alice}&kind=login_succeeded&limit=1"), &staff, None)
            .await;
    let v = r.json();
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["results"][0]["kind"], json!("login_succeeded"));
    let first = v["results"][0]["id"].as_i64().unwrap();
    let next = v["next"].as_str().expect("a next page").to_owned();
    let next_path = &next[next.find("/auth/").unwrap()..];
    let v = call(&app, Method::GET, next_path, &staff, None).await.json();
    let second = v["results"][0]["id"].as_i64().unwrap();
    assert!(second < first);
    assert_eq!(v["results"][0]["user_id"], json!(alice));

    let r = call(&app, Method::GET, "/auth/admin/audit/?kind=nope&user=x", &staff, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["user"], json!(["A valid integer is required."]));
    assert!(v["kind"][0].as_str().unwrap().starts_with("unknown audit event kind"));
}

/// Every admin route, with a body where it takes one (both slash forms are tested by the
/// caller).
fn every_route(user: i64, session: &str) -> Vec<(Method, String, Option<Value>)> {
    let u = format!("/auth/admin/users/{user}");
    vec![
        (Method::GET, "/auth/admin/users/".into(), None),
        (Method::POST, "/auth/admin/users/".into(), Some(json!({"email": "new@example.com", "password": PW}))),
        (Method::GET, format!("{u}/"), None),
        (Method::PATCH, format!("{u}/"), Some(json!({"first_name": "Eve"}))),
        (Method::POST, format!("{u}/set-password/"), Some(json!({"password": "a fresh passphrase"}))),
        (Method::GET, format!("{u}/sessions/"), None),
        (Method::DELETE, format!("{u}/sessions/"), None),
        (Method::DELETE, format!("{u}/sessions/{session}/"), None),
        (Method::GET, "/auth/admin/audit/".into(), None),
    ]
}

/// Every admin route, in both slash forms, answers 401 in DRF's shape (with
/// `WWW-Authenticate`) without a token and with a bad one, and changes nothing.
async fn every_route_needs_a_valid_token(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let (alice_refresh, _) = app.login("alice@example.com", PW).await;
    let session = jti_of(&alice_refresh);
    let invalid = bearer_not_valid("Token is invalid or expired");
    let mut expired = claims("access", alice);
    expired["exp"] = json!(now() - 3600);
    let bad_tokens = ["Bearer garbage".to_owned(), format!("Bearer {}", craft(&expired))];

    for (method, path, body) in every_route(alice, &session) {
        let body = body.map(|b| b.to_string());
        for path in [path.clone(), path.trim_end_matches('/').to_owned()] {
            let r = app.send(method.clone(), &path, body.as_deref(), &[]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} without a token: {}", r.text);
            assert_401(&r, NO_CREDENTIALS);
            for bad in &bad_tokens {
                let r = app.send(method.clone(), &path, body.as_deref(), &[("authorization", bad.as_str())]).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} with {bad}: {}", r.text);
                assert_401(&r, &invalid);
            }
        }
    }
    let user = app.state.store.find_user(alice).await.unwrap().unwrap();
    assert_eq!(user.first_name, "", "nothing changed");
    assert!(app.state.store.find_by_email("new@example.com").await.unwrap().is_none(), "nobody created");
    assert_eq!(
        app.post("/auth/token/refresh/", &json!({"refresh": alice_refresh}).to_string()).await.status,
        StatusCode::OK
    );
    app.login("alice@example.com", PW).await;
}

/// Granting or removing staff and superuser needs a superuser: a staff member may neither make
/// someone a superuser nor take another staff member's staff flag (403 in DRF's shape, nothing
/// written); a superuser may do both.
async fn only_superusers_grant_and_remove_flags(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let colleague = app.add_user("colleague@example.com", PW, true, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let root_id = add_superuser(&app, "root@example.com").await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;
    let alice_path = format!("/auth/admin/users/{alice}/");
    let colleague_path = format!("/auth/admin/users/{colleague}/");

    let r = call(&app, Method::PATCH, &alice_path, &staff, Some(json!({"is_superuser": true}))).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    let r = call(&app, Method::PATCH, &colleague_path, &staff, Some(json!({"is_staff": false}))).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    let r = call(&app, Method::PATCH, &colleague_path, &staff, Some(json!({"is_superuser": true}))).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    let a = app.state.store.find_user(alice).await.unwrap().unwrap();
    let c = app.state.store.find_user(colleague).await.unwrap().unwrap();
    assert_eq!((a.is_superuser, c.is_staff, c.is_superuser), (false, true, false), "nothing written");

    let r = call(&app, Method::PATCH, &alice_path, &root, Some(json!({"is_superuser": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["is_superuser"], json!(true));
    assert!(app.state.store.find_user(alice).await.unwrap().unwrap().is_superuser);
    // Now a superuser, alice is out of a staff member's reach.
    let r = call(&app, Method::PATCH, &alice_path, &staff, Some(json!({"first_name": "A"}))).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);

    let r = call(&app, Method::PATCH, &colleague_path, &root, Some(json!({"is_staff": false}))).await;
    assert_eq!((r.status, r.json()["is_staff"].clone()), (StatusCode::OK, json!(false)), "{}", r.text);
    assert!(!app.state.store.find_user(colleague).await.unwrap().unwrap().is_staff);

    let kinds = audit_kinds(&app, alice).await;
    assert!(kinds.contains(&("user_updated".into(), Some(root_id))), "{kinds:?}");
}

/// Admin deactivation, set-password and ending all of a user's sessions each refuse the user's
/// earlier access token on `/auth/user/` (the watermark, which outlives a reactivation) and
/// publish the user in the revocation feed, in order; other users are untouched.
async fn admin_revocations_refuse_access_tokens_and_reach_the_feed(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let bob = app.add_user("bob@example.com", PW, false, &[]).await;
    let carol = app.add_user("carol@example.com", PW, false, &[]).await;
    app.add_user("dave@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (_, alice_access) = app.login("alice@example.com", PW).await;
    let (_, bob_access) = app.login("bob@example.com", PW).await;
    let (_, carol_access) = app.login("carol@example.com", PW).await;
    let (_, dave_access) = app.login("dave@example.com", PW).await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let invalid = bearer_not_valid("Token is invalid or expired");
    assert_eq!(feed_users(&app).await, Vec::<i64>::new());

    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{alice}/"), &staff, Some(json!({"is_active": false})))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_401(&app.get_bearer("/auth/user/", &alice_access).await, INACTIVE);
    assert_eq!(feed_users(&app).await, [alice], "deactivation is published");
    // Reactivated, the old access token stays refused: the watermark, not only the flag.
    let r = call(&app, Method::PATCH, &format!("/auth/admin/users/{alice}/"), &staff, Some(json!({"is_active": true})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_401(&app.get_bearer("/auth/user/", &alice_access).await, &invalid);

    let r = call(
        &app,
        Method::POST,
        &format!("/auth/admin/users/{bob}/set-password/"),
        &staff,
        Some(json!({"password": "a fresh passphrase"})),
    )
    .await;
    assert_json(&r, StatusCode::OK, "{}");
    assert_401(&app.get_bearer("/auth/user/", &bob_access).await, &invalid);
    assert_eq!(feed_users(&app).await, [alice, bob], "set-password is published");

    let r = call(&app, Method::DELETE, &format!("/auth/admin/users/{carol}/sessions/"), &staff, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_401(&app.get_bearer("/auth/user/", &carol_access).await, &invalid);
    assert_eq!(feed_users(&app).await, [alice, bob, carol], "ending all sessions is published");

    assert_eq!(app.get_bearer("/auth/user/", &dave_access).await.status, StatusCode::OK, "dave untouched");
    assert_eq!(app.get_bearer("/auth/user/", &staff).await.status, StatusCode::OK, "the admin untouched");
    // A new sign-in works again for each of them.
    for (email, password) in
        [("alice@example.com", PW), ("bob@example.com", "a fresh passphrase"), ("carol@example.com", PW)]
    {
        let (_, access) = app.login(email, password).await;
        assert_eq!(app.get_bearer("/auth/user/", &access).await.status, StatusCode::OK, "{email} signs in again");
    }
}

both_backends!(
    permissions_follow_staff_and_reader_roles,
    users_are_listed_searched_and_paged,
    each_listed_user_carries_its_own_access_groups,
    users_are_created_with_signup_rules,
    users_are_patched_and_deactivation_ends_sessions,
    passwords_are_set_and_end_sessions,
    sessions_are_listed_and_ended,
    audit_log_is_filtered_and_paged,
    every_route_needs_a_valid_token,
    only_superusers_grant_and_remove_flags,
    admin_revocations_refuse_access_tokens_and_reach_the_feed,
);
