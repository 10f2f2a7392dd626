//! The inventory example's routes tested as a host service tests its own, with no auth-service:
//! users seeded into the mirror and tokens minted by `client_service::testing` (what Django REST
//! framework's `force_authenticate` and `APIClient` give a Django test), on SQLite and
//! PostgreSQL.

#[path = "../examples/inventory/app.rs"]
mod inventory;

use std::time::Duration;

use axum::Router;
use client_service::testing::{TestAuth, TestUser};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::{Backend, TestDb};
use tower::ServiceExt;

/// Ann may add items (group `warehouse`), Bob may only read.
const ANN: i64 = 41;
const BOB: i64 = 42;

/// The inventory service over a fresh database, with Ann and Bob in its mirror.
async fn inventory_with_users(backend: Backend) -> Option<(TestDb, TestAuth, Router)> {
    let host = TestDb::empty(backend, "inventory routes").await?;
    inventory::migrate(&host.db).await.expect("both migration sets");
    let auth = TestAuth::new(host.db.clone()).expect("test state");
    auth.seed(TestUser::new(ANN, "ann@example.com").group("warehouse", None)).await;
    auth.seed(TestUser::new(BOB, "bob@example.com")).await;
    let app = inventory::app(auth.state(), host.db.clone());
    Some((host, auth, app))
}

/// `method path` with an `Authorization` header (when given) and a JSON body (when given).
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let req = req.body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

fn invalid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

async fn a_warehouse_member_adds_items_and_anyone_signed_in_reads_them(backend: Backend) {
    let Some((_host, auth, app)) = inventory_with_users(backend).await else { return };
    let ann = auth.token(ANN).bearer();
    let (status, body) =
        call(&app, "POST", "/inventory/items/add/", Some(&ann), Some(json!({"name": "crate of apples"}))).await;
    let items = json!({"items": [{"name": "crate of apples", "added_by": "ann@example.com"}]});
    assert_eq!((status, &body), (200, &items), "Ann is in warehouse");
    let bob = auth.token(BOB).lifetime(Duration::from_secs(30)).bearer();
    assert_eq!(call(&app, "GET", "/inventory/items/", Some(&bob), None).await, (200, items), "Bob reads");
    let (status, body) = call(&app, "POST", "/inventory/items/add/", Some(&bob), Some(json!({"name": "x"}))).await;
    assert_eq!(
        (status, body),
        (403, json!({"detail": "You do not have permission to perform this action."})),
        "Bob is not in warehouse"
    );
    let (status, body) = call(&app, "POST", "/inventory/items/add/", Some(&ann), Some(json!({"nom": "x"}))).await;
    assert_eq!(status, 400, "a body without a name: {body}");
}

async fn refused_tokens_get_401_before_any_group_check(backend: Backend) {
    let Some((_host, auth, app)) = inventory_with_users(backend).await else { return };
    let add = Some(json!({"name": "x"}));
    let (status, body) = call(&app, "POST", "/inventory/items/add/", None, add.clone()).await;
    assert_eq!((status, body), (401, json!({"detail": "Authentication credentials were not provided."})));
    for (case, token) in
        [("expired", auth.token(ANN).expired().bearer()), ("tampered", auth.token(ANN).tampered().bearer())]
    {
        assert_eq!(call(&app, "GET", "/inventory/items/", Some(&token), None).await, (401, invalid()), "{case}");
        let (status, body) = call(&app, "POST", "/inventory/items/add/", Some(&token), add.clone()).await;
        assert_eq!((status, body), (401, invalid()), "{case}: 401, not 403");
    }
}

async fn revoked_sessions_refuse_earlier_tokens_and_accept_new_ones(backend: Backend) {
    let Some((_host, auth, app)) = inventory_with_users(backend).await else { return };
    let before = auth.token(BOB).bearer();
    assert_eq!(call(&app, "GET", "/inventory/items/", Some(&before), None).await.0, 200, "valid at first");
    let revoked = auth.token(BOB).revoked().bearer();
    assert_eq!(call(&app, "GET", "/inventory/items/", Some(&revoked), None).await, (401, invalid()), "revoked");
    assert_eq!(
        call(&app, "GET", "/inventory/items/", Some(&before), None).await,
        (401, invalid()),
        "a token minted before the revocation, even one already accepted"
    );
    let after = auth.token(BOB).bearer();
    assert_eq!(call(&app, "GET", "/inventory/items/", Some(&after), None).await.0, 200, "a token minted after it");
    assert_eq!(
        call(&app, "GET", "/inventory/items/", Some(&auth.token(ANN).bearer()), None).await.0,
        200,
        "Ann is untouched"
    );
}

async fn seeded_users_can_be_changed_and_deactivated(backend: Backend) {
    let Some((_host, auth, app)) = inventory_with_users(backend).await else { return };
    let bob = auth.token(BOB).bearer();
    auth.seed(TestUser::new(BOB, "bob@example.com").group("warehouse", None)).await;
    let (status, body) = call(&app, "POST", "/inventory/items/add/", Some(&bob), Some(json!({"name": "pears"}))).await;
    assert_eq!(status, 200, "Bob joined warehouse: {body}");
    auth.seed(TestUser::new(BOB, "bob@example.com").inactive()).await;
    let (status, body) = call(&app, "GET", "/inventory/items/", Some(&bob), None).await;
    assert_eq!((status, body), (401, json!({"detail": "User is inactive", "code": "user_inactive"})));
}

both_backends!(
    a_warehouse_member_adds_items_and_anyone_signed_in_reads_them,
    refused_tokens_get_401_before_any_group_check,
    revoked_sessions_refuse_earlier_tokens_and_accept_new_ones,
    seeded_users_can_be_changed_and_deactivated,
);
