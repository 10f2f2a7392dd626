//! The client crate inside a host service's database: it adds only its `gatehouse_` tables
//! (plus diesel's bookkeeping), and a host with diesel migrations and a `users` table of its own
//! (`examples/inventory`) runs both sets in one database, both working, on SQLite and PostgreSQL.

#[macro_use]
mod common;
#[path = "../examples/inventory/app.rs"]
mod inventory;

use axum::Router;
use client_service::{ClientConfig, ClientState, Db, DbError, VerifyMode};
use common::{KEY, Options, Pair};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_user::testing::{Backend, TestDb};
use shared_user::{both_backends, with_conn};
use tower::ServiceExt;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Every table of the database, sorted (SQLite's own `sqlite_*` tables included).
async fn tables(db: &Db) -> Vec<String> {
    let names = tables_query(db).await;
    let mut names: Vec<String> = names.expect("list tables").into_iter().map(|n| n.name).collect();
    names.sort();
    names
}

async fn tables_query(db: &Db) -> Result<Vec<Name>, DbError> {
    with_conn!(db, |conn| {
        let sql = match db {
            Db::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table'",
            Db::Postgres(_) => "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
        };
        Ok(diesel::sql_query(sql).load::<Name>(conn).await?)
    })
}

/// The columns of `table`.
async fn columns(db: &Db, table: &str) -> Vec<String> {
    columns_query(db, table).await.expect("list columns").into_iter().map(|n| n.name).collect()
}

async fn columns_query(db: &Db, table: &str) -> Result<Vec<Name>, DbError> {
    with_conn!(db, |conn| {
        let sql = match db {
            Db::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
            Db::Postgres(_) => {
                format!("SELECT column_name AS name FROM information_schema.columns WHERE table_name = '{table}'")
            }
        };
        Ok(diesel::sql_query(sql).load::<Name>(conn).await?)
    })
}

diesel::table! { users (id) { id -> BigInt, gatehouse_id -> BigInt } }
diesel::table! { gatehouse_users (id) { id -> BigInt, email -> Text } }

/// The host's own `users` (their auth-service ids) and the mirror's emails.
async fn own_and_mirrored_users(db: &Db) -> Result<(Vec<i64>, Vec<String>), DbError> {
    with_conn!(db, |conn| {
        let own = users::table.select(users::gatehouse_id).load::<i64>(conn).await?;
        let mirrored = gatehouse_users::table
            .order(gatehouse_users::id)
            .select(gatehouse_users::email)
            .load::<String>(conn)
            .await?;
        Ok((own, mirrored))
    })
}

async fn client_migrations_add_only_gatehouse_tables_without_passwords(backend: Backend) {
    let Some(host) = TestDb::empty(backend, "client migrations").await else { return };
    assert_eq!(client_service::migrate(&host.db).await.expect("migrate"), 1);
    assert_eq!(client_service::migrate(&host.db).await.expect("migrate again"), 0, "nothing left to run");
    assert_eq!(tables(&host.db).await, ["__diesel_schema_migrations", "gatehouse_access_groups", "gatehouse_users"]);
    let mut user_columns = columns(&host.db, "gatehouse_users").await;
    user_columns.sort();
    assert_eq!(
        user_columns,
        [
            "date_joined",
            "email",
            "first_name",
            "id",
            "is_active",
            "is_staff",
            "is_superuser",
            "last_login",
            "last_name",
            "synced_at"
        ],
        "no password column"
    );
}

async fn call(app: &Router, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

async fn host_and_client_migrations_share_one_database_and_both_work(backend: Backend) {
    let Some(pair) = Pair::start(backend, Options::new(VerifyMode::Local)).await else { return };
    let Some(host) = TestDb::empty(backend, "inventory host").await else { return };
    assert_eq!(inventory::migrate(&host.db).await.expect("both sets"), (1, 1));
    assert_eq!(inventory::migrate(&host.db).await.expect("both sets again"), (0, 0));
    assert_eq!(
        tables(&host.db).await,
        ["__diesel_schema_migrations", "gatehouse_access_groups", "gatehouse_users", "items", "users"]
    );

    let config = ClientConfig::builder(pair.auth_url.clone()).local_hmac(KEY).build().expect("config");
    let state = ClientState::new(config, host.db.clone()).expect("state");
    let app = inventory::app(state.clone(), host.db.clone());
    let ann = pair.add_user("ann@example.com", &["warehouse"]).await;
    pair.add_user("bob@example.com", &[]).await;
    let (_, ann_token) = pair.login_direct("ann@example.com").await;
    let (_, bob_token) = pair.login_direct("bob@example.com").await;

    // The host's tables work: an item is added, with the host's own profile of its author.
    let (status, body) =
        call(&app, "POST", "/inventory/items/add/", &ann_token, Some(json!({"name": "crate of apples"}))).await;
    assert_eq!(status, 200, "{body}");
    let items = json!({"items": [{"name": "crate of apples", "added_by": "ann@example.com"}]});
    assert_eq!(body, items);
    assert_eq!(call(&app, "GET", "/inventory/items/", &bob_token, None).await, (200, items));
    // The mirror works in the same database: both users mirrored, Bob refused by group.
    let (status, _) = call(&app, "POST", "/inventory/items/add/", &bob_token, Some(json!({"name": "x"}))).await;
    assert_eq!(status, 403);
    let (status, body) = call(&app, "POST", "/inventory/items/add/", &ann_token, Some(json!({"nom": "x"}))).await;
    assert_eq!(status, 400, "{body}");

    state.flush_mirror().await;
    let (own, mirrored) = own_and_mirrored_users(&host.db).await.expect("read both tables");
    assert_eq!(own, [ann], "the host's own users table holds its own rows");
    assert_eq!(mirrored, ["ann@example.com", "bob@example.com"], "the mirror holds both users");
    drop(app);
    drop(host);
    pair.finish().await;
}

both_backends!(
    client_migrations_add_only_gatehouse_tables_without_passwords,
    host_and_client_migrations_share_one_database_and_both_work,
);
