//! Staff cannot widen their own reach through the admin API: membership of a group that grants
//! access (the `USERS_READER_GROUP`; every group under a Hasura claims preset) and any change
//! to a staff account need a superuser, and the last active superuser cannot demote themself,
//! not even when two superusers demote each other at once.

mod common;

use auth_service::store::NewUser;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";
const STRONG: &str = "Plenty-of-entropy-93!";
const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const LAST_SUPERUSER: &str = "This is the last active superuser: make another user superuser before removing this one.";

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

async fn group_names(app: &TestApp, id: i64) -> Vec<String> {
    let user = app.state.store.find_user(id).await.unwrap().unwrap();
    user.access_groups.into_iter().map(|g| g.name).collect()
}

/// The reader group: staff can neither give it (to anyone, themselves included) nor take it;
/// a superuser can. Other groups of ordinary accounts stay staff's to manage.
async fn only_superusers_change_reader_group_membership(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--users-reader-group", "manager"]).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let reader = app.add_user("reader@example.com", PW, false, &["manager"]).await;
    let staff = app.add_user("staff@example.com", PW, true, &[]).await;
    add_superuser(&app, "root@example.com").await;
    let (_, staff_token) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;

    for (id, groups) in [(staff, json!(["manager"])), (alice, json!(["manager"])), (reader, json!([]))] {
        let r = call(
            &app,
            Method::PATCH,
            &format!("/auth/admin/users/{id}/"),
            &staff_token,
            Some(json!({"access_groups": groups})),
        )
        .await;
        assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    }
    let body = json!({"email": "sock@example.com", "password": STRONG, "access_groups": ["manager"]});
    let r = call(&app, Method::POST, "/auth/admin/users/", &staff_token, Some(body.clone())).await;
    assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    assert_eq!((group_names(&app, staff).await, group_names(&app, alice).await), (vec![], vec![]));
    assert_eq!(group_names(&app, reader).await, vec!["manager"]);

    // A group that grants nothing, on an ordinary account: staff's to manage.
    let r = call(
        &app,
        Method::PATCH,
        &format!("/auth/admin/users/{alice}/"),
        &staff_token,
        Some(json!({"access_groups": ["ops:lead"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The reader's other groups too, as long as the reader group stays.
    let r = call(
        &app,
        Method::PATCH,
        &format!("/auth/admin/users/{reader}/"),
        &staff_token,
        Some(json!({"access_groups": ["manager", "ops"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = call(
        &app,
        Method::PATCH,
        &format!("/auth/admin/users/{alice}/"),
        &root,
        Some(json!({"access_groups": ["manager"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{reader}/"), &root, Some(json!({"access_groups": []})))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(call(&app, Method::POST, "/auth/admin/users/", &root, Some(body)).await.status, StatusCode::CREATED);
}

/// With a Hasura claims preset every group name is an allowed Hasura role: giving or taking
/// any group needs a superuser; a level change within a group (levels are not roles) does not.
async fn under_hasura_every_group_grants_access(backend: Backend) {
    let extra = ["--users-reader-group", "manager", "--claims-preset", "hasura"];
    let Some(app) = TestApp::new(backend, &extra).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &["ops:member"]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    add_superuser(&app, "root@example.com").await;
    let (_, staff) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;
    let page = format!("/auth/admin/users/{alice}/");

    for groups in [json!(["ops", "billing"]), json!([])] {
        let r = call(&app, Method::PATCH, &page, &staff, Some(json!({"access_groups": groups}))).await;
        assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
    }
    let r = call(&app, Method::PATCH, &page, &staff, Some(json!({"access_groups": ["ops:lead"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "a level is no role: {}", r.text);
    let body = json!({"email": "new@example.com", "password": STRONG, "access_groups": ["billing"]});
    assert_json(
        &call(&app, Method::POST, "/auth/admin/users/", &staff, Some(body.clone())).await,
        StatusCode::FORBIDDEN,
        FORBIDDEN,
    );
    let r = call(&app, Method::PATCH, &page, &root, Some(json!({"access_groups": ["ops", "billing"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(call(&app, Method::POST, "/auth/admin/users/", &root, Some(body)).await.status, StatusCode::CREATED);
}

/// A staff account (another's or one's own) is changed by a superuser only: names, groups,
/// password, deactivation, sessions. Staff still manage ordinary accounts.
async fn staff_accounts_are_changed_by_superusers_only(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--users-reader-group", "manager"]).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let staff = app.add_user("staff@example.com", PW, true, &[]).await;
    let other = app.add_user("other@example.com", PW, true, &[]).await;
    add_superuser(&app, "root@example.com").await;
    let (_, token) = app.login("staff@example.com", PW).await;
    let (_, root) = app.login("root@example.com", PW).await;

    for id in [other, staff] {
        let writes = [
            (Method::PATCH, format!("/auth/admin/users/{id}/"), Some(json!({"first_name": "Mallory"}))),
            (Method::PATCH, format!("/auth/admin/users/{id}/"), Some(json!({"is_active": false}))),
            (Method::POST, format!("/auth/admin/users/{id}/set-password/"), Some(json!({"password": STRONG}))),
            (Method::DELETE, format!("/auth/admin/users/{id}/sessions/"), None),
        ];
        for (method, path, body) in writes {
            let r = call(&app, method.clone(), &path, &token, body).await;
            assert_json(&r, StatusCode::FORBIDDEN, FORBIDDEN);
        }
    }
    let other_user = app.state.store.find_user(other).await.unwrap().unwrap();
    assert!(other_user.is_active && other_user.first_name.is_empty());
    app.login("other@example.com", PW).await;

    let r = call(
        &app,
        Method::POST,
        &format!("/auth/admin/users/{alice}/set-password/"),
        &token,
        Some(json!({"password": STRONG})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "ordinary accounts stay staff's: {}", r.text);
    let r =
        call(&app, Method::PATCH, &format!("/auth/admin/users/{alice}/"), &token, Some(json!({"is_active": false})))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = call(
        &app,
        Method::POST,
        &format!("/auth/admin/users/{other}/set-password/"),
        &root,
        Some(json!({"password": STRONG})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&app, Method::PATCH, &format!("/auth/admin/users/{other}/"), &root, Some(json!({"is_active": false})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// The last active superuser keeps the flag (and cannot deactivate themself); with a second
/// one, either may step down; two demoting each other at once leave one.
async fn the_last_active_superuser_stays(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[] as &[&str]).await else { return };
    let root = add_superuser(&app, "root@example.com").await;
    let (_, token) = app.login("root@example.com", PW).await;
    let me = format!("/auth/admin/users/{root}/");

    let r = call(&app, Method::PATCH, &me, &token, Some(json!({"is_superuser": false}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("is_superuser", LAST_SUPERUSER));
    let r = call(&app, Method::PATCH, &me, &token, Some(json!({"is_active": false}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("is_active", "You cannot deactivate your own account."));
    assert!(app.state.store.find_user(root).await.unwrap().unwrap().is_superuser);

    // An inactive superuser does not count.
    let dormant = add_superuser(&app, "dormant@example.com").await;
    app.set_active(dormant, false).await;
    let r = call(&app, Method::PATCH, &me, &token, Some(json!({"is_superuser": false}))).await;
    assert_json(&r, StatusCode::BAD_REQUEST, &field_error("is_superuser", LAST_SUPERUSER));

    let second = add_superuser(&app, "second@example.com").await;
    let (_, second_token) = app.login("second@example.com", PW).await;
    // Both at once, each demoting the other: one of them stays a superuser.
    let second_page = format!("/auth/admin/users/{second}/");
    let (a, b) = tokio::join!(
        call(&app, Method::PATCH, &second_page, &token, Some(json!({"is_superuser": false}))),
        call(&app, Method::PATCH, &me, &second_token, Some(json!({"is_superuser": false}))),
    );
    // The loser is refused as the last superuser (400), or, when the winner committed before
    // it was even authenticated, as no longer a superuser (403).
    let succeeded = [&a, &b].iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(succeeded, 1, "{} / {}", a.text, b.text);
    let users = app.state.store.list_users().await.unwrap();
    assert_eq!(users.iter().filter(|u| u.is_superuser && u.is_active).count(), 1);

    // With a second active superuser, stepping down is allowed.
    let third = add_superuser(&app, "third@example.com").await;
    let (_, third_token) = app.login("third@example.com", PW).await;
    let r = call(
        &app,
        Method::PATCH,
        &format!("/auth/admin/users/{third}/"),
        &third_token,
        Some(json!({"is_superuser": false})),
    )
    .await;
    assert_eq!((r.status, r.json()["is_superuser"].clone()), (StatusCode::OK, json!(false)), "{}", r.text);
}

both_backends!(
    only_superusers_change_reader_group_membership,
    under_hasura_every_group_grants_access,
    staff_accounts_are_changed_by_superusers_only,
    the_last_active_superuser_stays,
);
