//! The role of a user: one rule that GraphQL `profile { role }`, the Hasura default role and
//! the permission to read every user all follow.
//!
//! - A user in the `USERS_READER_GROUP` access group (e.g. `manager`, by name; the level does
//!   not matter) has that group's name as role, and may read every user.
//! - Everyone else has `HASURA_DEFAULT_ROLE` (default `user`).
//! - Staff and superusers may read every user whatever their role. Only they ever get Hasura's
//!   `admin` role (as an allowed role, see [`crate::claims`]); neither setting may be `admin`.

use shared_user::User;

use crate::settings::ClaimsPreset;
use crate::settings::Settings;

/// The role of `user` under the rule above.
pub fn role<'a>(config: &'a Settings, user: &User) -> &'a str {
    match reader_group(config, user) {
        Some(group) => group,
        None => &config.hasura_default_role,
    }
}

/// Whether `user` may read every user (GraphQL `users`, admin reads): staff, superusers and
/// members of `USERS_READER_GROUP`. Reusable by any front end that lists users.
pub fn may_read_users(config: &Settings, user: &User) -> bool {
    user.is_staff || user.is_superuser || reader_group(config, user).is_some()
}

/// Whether membership of the access group `name` grants access, so that only a superuser may
/// give or take it ([`crate::service::admin`]): the `USERS_READER_GROUP` (it reads every user),
/// and, with a Hasura claims preset, every group (each group name becomes an allowed Hasura
/// role, see [`crate::claims`]).
pub fn grants_access(config: &Settings, name: &str) -> bool {
    config.users_reader_group.as_deref() == Some(name)
        || matches!(config.claims_preset, ClaimsPreset::Hasura | ClaimsPreset::HasuraTutorial)
}

/// The reader group's name when `user` is in it.
fn reader_group<'a>(config: &'a Settings, user: &User) -> Option<&'a str> {
    let group = config.users_reader_group.as_deref()?;
    user.access_groups.iter().any(|g| g.name == group).then_some(group)
}
