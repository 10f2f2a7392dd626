//! Diesel schema of the auth-service's own database (`migrations/auth/{sqlite,postgres}`, identical
//! directory names per backend). Client mirrors use their own `gatehouse_` tables.

diesel::table! {
    /// Users: the source of truth for every client-service's mirror.
    /// (`synced_at` is unused here: a column of the original shared schema, kept so deployed
    /// databases need no migration.)
    users (id) {
        id -> BigInt,
        email -> Text,
        password -> Text,
        first_name -> Text,
        last_name -> Text,
        date_joined -> Timestamp,
        last_login -> Nullable<Timestamp>,
        is_active -> Bool,
        is_staff -> Bool,
        is_superuser -> Bool,
        synced_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Access groups ("extra data"): many per user, each a name and an optional level.
    access_groups (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        level -> Nullable<Text>,
    }
}

diesel::table! {
    /// Refresh tokens issued by the auth-service: one row per jti, grouped in rotation families.
    refresh_tokens (jti) {
        jti -> Text,
        user_id -> BigInt,
        family -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        replaced_by -> Nullable<Text>,
        replaced_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(access_groups -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, access_groups, refresh_tokens, signing_keys, login_throttle);

diesel::table! {
    /// Asymmetric signing keys of the auth-service (`next`, `current`, `retired`, `revoked`);
    /// at most one is `current` (a unique partial index).
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_pem -> Text,
        status -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Failed-login counters of the auth-service (brute-force protection).
    login_throttle (key) {
        key -> Text,
        failures -> Integer,
        last_failure -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}
