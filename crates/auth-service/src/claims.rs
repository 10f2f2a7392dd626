//! Claim presets: the extra claims an access token carries for a given consumer (`CLAIMS_PRESET`).
//!
//! `hasura` follows Hasura's JWT mode (<https://hasura.io/docs/latest/auth/authentication/jwt/>):
//! after the standard claims come `sub` (the user id as a string), `name`, `email` and the
//! `https://hasura.io/jwt/claims` namespace with `x-hasura-allowed-roles`,
//! `x-hasura-default-role` and `x-hasura-user-id`.
//!
//! Roles: the default role (the user's role, [`crate::roles::role`]: the `USERS_READER_GROUP`
//! for its members, else `HASURA_DEFAULT_ROLE`, default `user`), then `user` (everyone), then
//! the names of the user's access groups (by name; levels are not roles), then `admin` for staff
//! and superusers; duplicates are dropped. The default role is always allowed, because Hasura
//! refuses a token whose default role is not among its allowed roles. A group named `admin`
//! is not a role: Hasura's `admin` bypasses every permission, so only staff and superusers get it.
//!
//! `hasura-tutorial` adds, before the namespace, the claims the Hasura/Graphene tutorial's
//! payload carries: `username` (the email, as in graphql-jwt), `sub_name` (the display name)
//! and `sub_email`.

use serde_json::{Map, Value, json};
use shared_user::User;

use crate::settings::ClaimsPreset;

/// Hasura's claims namespace.
pub const HASURA_NAMESPACE: &str = "https://hasura.io/jwt/claims";
/// The role every signed-in user has.
pub const USER_ROLE: &str = "user";
/// The extra role of staff and superusers.
pub const ADMIN_ROLE: &str = "admin";

/// The extra claims `preset` adds to an access token of `user`.
pub fn access_claims(preset: ClaimsPreset, user: &User, default_role: &str) -> Map<String, Value> {
    match preset {
        ClaimsPreset::None => Map::new(),
        ClaimsPreset::Hasura => hasura(user, default_role, false),
        ClaimsPreset::HasuraTutorial => hasura(user, default_role, true),
    }
}

/// The names of the claims `preset` adds to access tokens (for the discovery document).
pub fn preset_claim_names(preset: ClaimsPreset) -> &'static [&'static str] {
    match preset {
        ClaimsPreset::None => &[],
        ClaimsPreset::Hasura => &["sub", "name", "email", HASURA_NAMESPACE],
        ClaimsPreset::HasuraTutorial => {
            &["sub", "name", "email", "username", "sub_name", "sub_email", HASURA_NAMESPACE]
        }
    }
}

/// The Hasura roles of `user`, the default role first.
pub fn hasura_roles(user: &User, default_role: &str) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    let staff = user.is_staff || user.is_superuser;
    let groups = user.access_groups.iter().map(|g| g.name.as_str()).filter(|name| staff || *name != ADMIN_ROLE);
    let candidates = [default_role, USER_ROLE].into_iter().chain(groups).chain(staff.then_some(ADMIN_ROLE));
    for role in candidates {
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_owned());
        }
    }
    roles
}

/// A display name: first and last name, or the email when both are empty.
fn display_name(user: &User) -> String {
    let full = format!("{} {}", user.first_name.trim(), user.last_name.trim());
    let full = full.trim();
    if full.is_empty() { user.email.clone() } else { full.to_owned() }
}

fn hasura(user: &User, default_role: &str, tutorial: bool) -> Map<String, Value> {
    let id = user.id.to_string();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(id.clone()));
    claims.insert("name".into(), Value::from(display_name(user)));
    claims.insert("email".into(), Value::from(user.email.clone()));
    if tutorial {
        claims.insert("username".into(), Value::from(user.email.clone()));
        claims.insert("sub_name".into(), Value::from(display_name(user)));
        claims.insert("sub_email".into(), Value::from(user.email.clone()));
    }
    claims.insert(
        HASURA_NAMESPACE.into(),
        json!({
            "x-hasura-allowed-roles": hasura_roles(user, default_role),
            "x-hasura-default-role": default_role,
            "x-hasura-user-id": id,
        }),
    );
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_user::AccessGroup;
    use shared_user::user::now_utc;

    fn user(staff: bool, groups: &[&str]) -> User {
        User {
            id: 7,
            email: "ann@example.com".into(),
            first_name: "Ann".into(),
            last_name: String::new(),
            date_joined: now_utc(),
            last_login: None,
            is_active: true,
            is_staff: staff,
            is_superuser: false,
            access_groups: groups.iter().map(|g| AccessGroup::parse(g).unwrap()).collect(),
        }
    }

    #[test]
    fn roles_start_with_the_default_and_drop_duplicates() {
        assert_eq!(hasura_roles(&user(false, &[]), "user"), ["user"]);
        assert_eq!(hasura_roles(&user(true, &["billing:admin", "user"]), "user"), ["user", "billing", "admin"]);
        assert_eq!(hasura_roles(&user(false, &["editor"]), "viewer"), ["viewer", "user", "editor"]);
    }

    #[test]
    fn a_group_named_admin_gives_the_admin_role_to_staff_only() {
        assert_eq!(hasura_roles(&user(false, &["admin", "editor"]), "user"), ["user", "editor"]);
        assert_eq!(hasura_roles(&user(true, &["admin"]), "user"), ["user", "admin"]);
    }

    #[test]
    fn hasura_preset_shape() {
        let claims = access_claims(ClaimsPreset::Hasura, &user(false, &["editor"]), "user");
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            r#"{"sub":"7","name":"Ann","email":"ann@example.com","https://hasura.io/jwt/claims":{"x-hasura-allowed-roles":["user","editor"],"x-hasura-default-role":"user","x-hasura-user-id":"7"}}"#
        );
        assert!(access_claims(ClaimsPreset::None, &user(false, &[]), "user").is_empty());
        let tutorial = access_claims(ClaimsPreset::HasuraTutorial, &user(false, &["editor"]), "user");
        let keys: Vec<&String> = tutorial.keys().collect();
        assert_eq!(keys, ["sub", "name", "email", "username", "sub_name", "sub_email", HASURA_NAMESPACE]);
        assert_eq!((&tutorial["username"], &tutorial["sub_name"]), (&json!("ann@example.com"), &json!("Ann")));
        let mut nameless = user(false, &[]);
        nameless.first_name.clear();
        assert_eq!(display_name(&nameless), "ann@example.com");
    }
}
