//! The inventory service itself (routes, its own tables, its migrations), apart from `main` so
//! `tests/host_migrations.rs` drives the very same code.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use client_service::{AuthUser, ClientState, Db, DbError, Migrations, RequireAuthLayer, with_conn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::{Value, json};

/// This service's own migrations (`examples/inventory/migrations/`). Their versions
/// (`2026-11-30-120000`) differ from the client crate's (`2026-11-23-9000NN`), so both sets
/// share the database's one `__diesel_schema_migrations` table.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("examples/inventory/migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("examples/inventory/migrations/sqlite"),
};

diesel::table! {
    /// The service's own users: a profile per person who signed in here.
    users (id) {
        id -> BigInt,
        gatehouse_id -> BigInt,
        display_name -> Text,
    }
}

diesel::table! {
    /// Stock items and who added them.
    items (id) {
        id -> BigInt,
        name -> Text,
        added_by -> BigInt,
    }
}

diesel::joinable!(items -> users (added_by));
diesel::allow_tables_to_appear_in_same_query!(users, items);

/// Runs this service's migrations, then the client crate's; returns how many of each ran.
pub async fn migrate(db: &Db) -> Result<(usize, usize), DbError> {
    Ok((db.migrate(MIGRATIONS).await?, client_service::migrate(db).await?))
}

/// This service's own state; the client crate only needs to find its `ClientState` in it.
#[derive(Clone, FromRef)]
pub struct Inventory {
    auth: ClientState,
    db: Db,
}

/// The whole service: reading needs a signed-in user, adding needs the `warehouse` group;
/// plus the client crate's `/auth/*` proxy and health routes.
pub fn app(auth: ClientState, db: Db) -> Router {
    let writers = Router::new()
        .route("/inventory/items/add/", post(add_item))
        .layer(RequireAuthLayer::new(auth.clone()).group("warehouse", None));
    Router::new()
        .route("/inventory/items/", get(list_items))
        .merge(writers)
        .with_state(Inventory { auth: auth.clone(), db })
        .merge(client_service::router(auth.clone()))
        .merge(client_service::health(auth))
}

/// A 400 or 500 in the same JSON shape as the client crate's answers.
#[derive(Debug)]
pub enum Failure {
    /// The request body is not `{"name": "..."}`.
    BadRequest(String),
    /// The database failed (logged, no detail in the body).
    Internal(String),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Internal(e.to_string())
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Failure::Internal(e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::BadRequest(why) => (StatusCode::BAD_REQUEST, Json(json!({"detail": why}))).into_response(),
            Failure::Internal(why) => {
                tracing::error!(%why, "inventory database error");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"detail": "A server error occurred."}))).into_response()
            }
        }
    }
}

async fn load_items(db: &Db) -> Result<Value, Failure> {
    let rows = with_conn!(db, |conn| {
        items::table
            .inner_join(users::table)
            .order(items::id.asc())
            .select((items::name, users::display_name))
            .load::<(String, String)>(conn)
            .await
            .map_err(Failure::from)
    })?;
    Ok(json!(rows.into_iter().map(|(name, by)| json!({"name": name, "added_by": by})).collect::<Vec<_>>()))
}

async fn list_items(State(db): State<Db>, AuthUser(_): AuthUser) -> Result<Json<Value>, Failure> {
    Ok(Json(json!({"items": load_items(&db).await?})))
}

/// Body of `POST /inventory/items/add/`.
#[derive(Deserialize)]
pub struct NewItem {
    name: String,
}

async fn add_item(
    State(db): State<Db>,
    AuthUser(user): AuthUser,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let Json(item) = body.map_err(|e| Failure::BadRequest(e.body_text()))?;
    let name = item.name.trim().to_owned();
    if name.is_empty() {
        return Err(Failure::BadRequest("name: This field may not be blank.".into()));
    }
    with_conn!(&db, |conn| {
        // The service's own profile of the signed-in user, keyed by the auth-service's id.
        diesel::insert_into(users::table)
            .values((users::gatehouse_id.eq(user.id), users::display_name.eq(&user.email)))
            .on_conflict(users::gatehouse_id)
            .do_nothing()
            .execute(conn)
            .await?;
        let owner: i64 = users::table.filter(users::gatehouse_id.eq(user.id)).select(users::id).first(conn).await?;
        diesel::insert_into(items::table)
            .values((items::name.eq(&name), items::added_by.eq(owner)))
            .execute(conn)
            .await?;
        Ok::<(), Failure>(())
    })?;
    Ok(Json(json!({"items": load_items(&db).await?})))
}
