//! Diesel schema of the mirror (`migrations/client/{sqlite,postgres}`): two `gatehouse_` tables
//! in the host service's database.

use shared_user::Migrations;

/// The mirror's tables (`migrations/client/{postgres,sqlite}`): `gatehouse_users` and
/// `gatehouse_access_groups`, no password anywhere. Pass it to your own migration tooling, or
/// call [`migrate`](crate::migrate).
pub const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/client/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/client/sqlite"),
};

diesel::table! {
    /// Mirrored users, keyed by the auth-service's id; no password.
    gatehouse_users (id) {
        id -> BigInt,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        date_joined -> Timestamp,
        last_login -> Nullable<Timestamp>,
        is_active -> Bool,
        is_staff -> Bool,
        is_superuser -> Bool,
        synced_at -> Timestamp,
    }
}

diesel::table! {
    /// Mirrored access groups: one row per user and group name.
    gatehouse_access_groups (user_id, name) {
        user_id -> BigInt,
        name -> Text,
        level -> Nullable<Text>,
    }
}

diesel::joinable!(gatehouse_access_groups -> gatehouse_users (user_id));
diesel::allow_tables_to_appear_in_same_query!(gatehouse_users, gatehouse_access_groups);
