//! The admin operations behind `/auth/admin/` and the `/admin/` console: one set of functions,
//! each given the acting user, that checks what that user may do, writes the change with its
//! audit event and ends the sessions a change must end.
//!
//! Who may do what:
//! - reading users and their sessions: [`roles::may_read_users`] (staff, superusers and the
//!   `USERS_READER_GROUP`);
//! - the audit log and every change: staff and superusers;
//! - a superuser only: granting or removing staff or superuser; any change to a staff or
//!   superuser account (names, groups, password, deactivation, sessions), the actor's own
//!   included, so staff cannot widen their own reach or lock other staff out; and giving or
//!   taking membership of a group that grants access ([`roles::grants_access`]: the
//!   `USERS_READER_GROUP`, and every group under a Hasura claims preset), for any account;
//! - nobody: removing the superuser flag of, or deactivating, the last active superuser
//!   (checked again in the database's transaction, see [`crate::store::Store::patch_user`]),
//!   or deactivating one's own account.

use serde_json::json;
use shared_user::http::FieldErrors;
use shared_user::{AccessGroup, User};

use super::{Grant, MAX_NAME_LENGTH, Registration, ServiceError, check_text, field_error, register_as, too_long};
use crate::audit::{AuditEvent, AuditKind};
use crate::roles;
use crate::state::AppState;
use crate::store::admin::{COUNT_CAP, Patched, UserPatch, UserSeek};
use crate::store::audit::{AuditFilter, AuditRow};
use crate::store::sessions::SessionRow;
use crate::store::watermark_now;
use crate::validators::{self, UserAttributes};

/// Users on one page of a listing (DRF's `PAGE_SIZE`).
pub const PAGE_SIZE: i64 = 25;
/// Refusal of an admin deactivating their own account.
pub const CANNOT_DEACTIVATE_SELF: &str = "You cannot deactivate your own account.";
/// Refusal of a change that would leave no active superuser.
pub const LAST_SUPERUSER: &str =
    "This is the last active superuser: make another user superuser before removing this one.";
/// Longest access group name or level.
pub const MAX_GROUP_LENGTH: usize = 150;

/// The last page a listing links to by number: pages up to it are read with an offset (as
/// cheap as a keyset while the offset stays under [`COUNT_CAP`] rows), later ones only after
/// an id.
pub const LAST_NUMBERED_PAGE: i64 = COUNT_CAP / PAGE_SIZE;

/// Which page of a user listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersAt {
    /// Page number (from 1), DRF's `?page=`.
    Page(i64),
    /// The users after this id (`?after=`), for pages at any depth.
    After(i64),
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Matching users in all pages, counted up to [`COUNT_CAP`] (see `more`).
    pub count: i64,
    /// Whether more than [`COUNT_CAP`] users match (`count` is then `COUNT_CAP`).
    pub more: bool,
    /// This page's number (from 1); `None` for a page after an id.
    pub page: Option<i64>,
    /// Whether a later page exists.
    pub has_next: bool,
    /// This page's users, by id.
    pub users: Vec<User>,
}

impl UserPage {
    /// The page after this one: by number up to [`LAST_NUMBERED_PAGE`], then after the last id.
    pub fn next(&self) -> Option<UsersAt> {
        if !self.has_next {
            return None;
        }
        match self.page {
            Some(page) if page < LAST_NUMBERED_PAGE => Some(UsersAt::Page(page + 1)),
            _ => self.users.last().map(|u| UsersAt::After(u.id)),
        }
    }

    /// The page before this one (numbered pages only: a page after an id links forward only).
    pub fn previous(&self) -> Option<UsersAt> {
        self.page.filter(|p| *p > 1).map(|p| UsersAt::Page(p - 1))
    }
}

/// A user an admin creates: the registration (same rules as signup) plus flags and groups.
/// No `Debug`: it holds a password.
#[derive(Clone, Default)]
pub struct NewAccount {
    /// Email, password and names, validated like every signup.
    pub registration: Registration,
    /// Staff flag (needs a superuser when set).
    pub is_staff: bool,
    /// Superuser flag (needs a superuser when set).
    pub is_superuser: bool,
    /// Access groups.
    pub access_groups: Vec<AccessGroup>,
}

/// Whether `user` may change users (staff and superusers).
pub fn may_change_users(user: &User) -> bool {
    user.is_staff || user.is_superuser
}

fn require_read(state: &AppState, viewer: &User) -> Result<(), ServiceError> {
    if roles::may_read_users(&state.settings, viewer) { Ok(()) } else { Err(ServiceError::Forbidden) }
}

fn require_change(actor: &User) -> Result<(), ServiceError> {
    if may_change_users(actor) { Ok(()) } else { Err(ServiceError::Forbidden) }
}

/// The user `id` for a change by `actor`: a staff or superuser account (the actor's own
/// included) only a superuser may change.
async fn target_for_change(state: &AppState, actor: &User, id: i64) -> Result<User, ServiceError> {
    require_change(actor)?;
    let user = state.store.find_user(id).await?.ok_or(ServiceError::NotFound)?;
    if (user.is_staff || user.is_superuser) && !actor.is_superuser {
        return Err(ServiceError::Forbidden);
    }
    Ok(user)
}

/// Whether going from groups `old` to `new` gives or takes a group that grants access
/// ([`roles::grants_access`]): then only a superuser may make the change.
fn changes_access(state: &AppState, old: &[AccessGroup], new: &[AccessGroup]) -> bool {
    let lacks = |list: &[AccessGroup], name: &str| !list.iter().any(|g| g.name == name);
    let given = new.iter().filter(|g| lacks(old, &g.name));
    let taken = old.iter().filter(|g| lacks(new, &g.name));
    given.chain(taken).any(|g| roles::grants_access(&state.settings, &g.name))
}

/// Checks the problems of access groups an admin gives (empty or too long names and levels,
/// characters no text may hold, a name given twice), as `{"access_groups": [...]}`.
pub fn check_groups(groups: &[AccessGroup]) -> Result<(), FieldErrors> {
    let mut problems: Vec<String> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let unsafe_text =
            validators::text_problem(&g.name).or_else(|| g.level.as_deref().and_then(validators::text_problem));
        if let Some(problem) = unsafe_text {
            problems.push(problem.to_owned());
        } else if g.name.trim().is_empty() {
            problems.push("A group name may not be blank.".into());
        } else if g.name.chars().count() > MAX_GROUP_LENGTH
            || g.level.as_deref().is_some_and(|l| l.chars().count() > MAX_GROUP_LENGTH)
        {
            problems.push(format!("Group names and levels have at most {MAX_GROUP_LENGTH} characters."));
        } else if groups[..i].iter().any(|o| o.name == g.name) {
            problems.push(format!("The group {:?} is given twice.", g.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let refs: Vec<&str> = problems.iter().map(String::as_str).collect();
        Err(field_error("access_groups", &refs))
    }
}

/// The page `at` of the users matching `search` (case-insensitive; blank: everyone): a
/// substring of the email or a name, or for a term of one or two characters the start of the
/// email (see [`crate::store::admin`]). A numbered page past the last one (but page 1) is
/// [`ServiceError::NotFound`]; a page after the last id is empty.
pub async fn list_users(
    state: &AppState,
    viewer: &User,
    search: Option<&str>,
    at: UsersAt,
) -> Result<UserPage, ServiceError> {
    require_read(state, viewer)?;
    check_text(&[("search", search.unwrap_or_default())])?;
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let (seek, page) = match at {
        UsersAt::Page(page) if page < 1 => return Err(ServiceError::NotFound),
        UsersAt::Page(page) => (UserSeek::Offset((page - 1).saturating_mul(PAGE_SIZE)), Some(page)),
        UsersAt::After(id) => (UserSeek::After(id), None),
    };
    let found = state.store.search_users(search, seek, PAGE_SIZE).await?;
    if found.users.is_empty() && page.is_some_and(|p| p > 1) {
        return Err(ServiceError::NotFound);
    }
    Ok(UserPage { count: found.count, more: found.more, page, has_next: found.has_next, users: found.users })
}

/// The user `id`, for a viewer who may read users.
pub async fn get_user(state: &AppState, viewer: &User, id: i64) -> Result<User, ServiceError> {
    require_read(state, viewer)?;
    state.store.find_user(id).await?.ok_or(ServiceError::NotFound)
}

/// Creates a user (registration rules of signup: email, password validators, names), with
/// flags and groups, in one transaction with its `user_created` event by `actor` (detail: the
/// flags and groups given).
pub async fn create_user(state: &AppState, actor: &User, account: NewAccount) -> Result<User, ServiceError> {
    require_change(actor)?;
    let widening = account.is_staff || account.is_superuser || changes_access(state, &[], &account.access_groups);
    if widening && !actor.is_superuser {
        return Err(ServiceError::Forbidden);
    }
    check_groups(&account.access_groups)?;
    let granted = UserPatch {
        is_staff: account.is_staff.then_some(true),
        is_superuser: account.is_superuser.then_some(true),
        access_groups: (!account.access_groups.is_empty()).then(|| account.access_groups.clone()),
        ..UserPatch::default()
    };
    let mut event = AuditEvent::new(AuditKind::UserCreated).actor(actor.id);
    if !granted.is_empty() {
        event = event.detail(patch_detail(&granted));
    }
    let grant = Grant {
        is_staff: account.is_staff,
        is_superuser: account.is_superuser,
        access_groups: account.access_groups,
        event,
    };
    register_as(state, account.registration, None, grant).await
}

/// What an audit event says about a patch: the fields written (names and flags with values,
/// groups as `NAME[:LEVEL]`).
fn patch_detail(patch: &UserPatch) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        detail.insert(k.to_owned(), v);
    };
    if let Some(v) = &patch.first_name {
        put("first_name", json!(v));
    }
    if let Some(v) = &patch.last_name {
        put("last_name", json!(v));
    }
    if let Some(v) = patch.is_active {
        put("is_active", json!(v));
    }
    if let Some(v) = patch.is_staff {
        put("is_staff", json!(v));
    }
    if let Some(v) = patch.is_superuser {
        put("is_superuser", json!(v));
    }
    if let Some(groups) = &patch.access_groups {
        let names: Vec<String> = groups
            .iter()
            .map(|g| match &g.level {
                Some(level) => format!("{}:{level}", g.name),
                None => g.name.clone(),
            })
            .collect();
        put("access_groups", json!(names));
    }
    serde_json::Value::Object(detail)
}

/// Changes user `id` as `patch` says, audited as `user_updated` by `actor`. Deactivation ends
/// every session of the user and refuses their earlier access tokens. Names longer than 150
/// characters, bad groups and an admin deactivating themself are field errors.
pub async fn update_user(state: &AppState, actor: &User, id: i64, patch: UserPatch) -> Result<User, ServiceError> {
    let user = target_for_change(state, actor, id).await?;
    let flips = |new: Option<bool>, old: bool| new.is_some_and(|v| v != old);
    let regroups = patch.access_groups.as_ref().is_some_and(|new| changes_access(state, &user.access_groups, new));
    let widening = flips(patch.is_staff, user.is_staff) || flips(patch.is_superuser, user.is_superuser) || regroups;
    if widening && !actor.is_superuser {
        return Err(ServiceError::Forbidden);
    }
    let mut errors = serde_json::Map::new();
    for (field, value) in [("first_name", &patch.first_name), ("last_name", &patch.last_name)] {
        if let Err(FieldErrors(map)) = check_text(&[(field, value.as_deref().unwrap_or_default())]) {
            errors.extend(map);
        } else if value.as_ref().is_some_and(|v| v.chars().count() > MAX_NAME_LENGTH) {
            errors.insert(field.into(), json!([too_long(MAX_NAME_LENGTH)]));
        }
    }
    if patch.is_active == Some(false) && user.id == actor.id {
        errors.insert("is_active".into(), json!([CANNOT_DEACTIVATE_SELF]));
    }
    if let Some(groups) = &patch.access_groups
        && let Err(FieldErrors(map)) = check_groups(groups)
    {
        errors.extend(map);
    }
    if !errors.is_empty() {
        return Err(ServiceError::Fields(FieldErrors(errors)));
    }
    if patch.is_empty() {
        return Ok(user);
    }
    let event = AuditEvent::new(AuditKind::UserUpdated).user(id).actor(actor.id).detail(patch_detail(&patch));
    // A deactivation ends the sessions in the same transaction (see `Store::patch_user`).
    match state.store.patch_user(id, &patch, &event).await? {
        Patched::Done => {}
        Patched::NoSuchUser => return Err(ServiceError::NotFound),
        Patched::LastSuperuser => {
            let field = if patch.is_superuser == Some(false) { "is_superuser" } else { "is_active" };
            return Err(field_error(field, &[LAST_SUPERUSER]).into());
        }
    }
    state.store.find_user(id).await?.ok_or(ServiceError::NotFound)
}

/// Sets the password of user `id` (Django's validators, messages under `"password"`), ends
/// every session of the user and refuses their earlier access tokens; audited as
/// `password_changed` by `actor`.
pub async fn set_password(state: &AppState, actor: &User, id: i64, password: &str) -> Result<(), ServiceError> {
    let user = target_for_change(state, actor, id).await?;
    if password.trim().is_empty() {
        return Err(field_error("password", &[shared_user::wire::msg::FIELD_BLANK]).into());
    }
    let attributes = UserAttributes { first_name: &user.first_name, last_name: &user.last_name, email: &user.email };
    let problems = validators::password_problems(password, &attributes);
    if !problems.is_empty() {
        return Err(field_error("password", &problems).into());
    }
    let hash = state.hasher.hash(password.to_owned()).await?;
    let event = AuditEvent::new(AuditKind::PasswordChanged).user(id).actor(actor.id).detail(json!({"by_admin": true}));
    state.store.change_password_everywhere(id, &hash, watermark_now(), &event).await?;
    Ok(())
}

/// Page `page` of the live sessions of user `id`, newest first (`None`: no such page, see
/// [`super::sessions::session_page`]).
pub async fn sessions(
    state: &AppState,
    viewer: &User,
    id: i64,
    page: i64,
) -> Result<Option<Vec<SessionRow>>, ServiceError> {
    let user = get_user(state, viewer, id).await?;
    super::sessions::session_page(state, user.id, page).await
}

/// Ends every session of user `id` and refuses their earlier access tokens (`logout_all` by
/// `actor`).
pub async fn end_sessions(state: &AppState, actor: &User, id: i64) -> Result<(), ServiceError> {
    let user = target_for_change(state, actor, id).await?;
    let event = AuditEvent::new(AuditKind::LogoutAll).user(user.id).actor(actor.id);
    state.store.revoke_everything(user.id, watermark_now(), &event).await?;
    Ok(())
}

/// Ends session `session` of user `id`; [`ServiceError::NotFound`] when it is not one of
/// their live sessions.
pub async fn end_session(state: &AppState, actor: &User, id: i64, session: &str) -> Result<(), ServiceError> {
    let user = target_for_change(state, actor, id).await?;
    // No session id holds such characters (and PostgreSQL cannot look a NUL up).
    if validators::text_problem(session).is_some() {
        return Err(ServiceError::NotFound);
    }
    let event =
        AuditEvent::new(AuditKind::SessionRevoked).user(user.id).actor(actor.id).detail(json!({"session": session}));
    if state.store.end_session(user.id, session, &event).await? { Ok(()) } else { Err(ServiceError::NotFound) }
}

/// Audit events matching `filter`, newest first (staff and superusers only).
pub async fn audit_log(state: &AppState, viewer: &User, filter: &AuditFilter) -> Result<Vec<AuditRow>, ServiceError> {
    require_change(viewer)?;
    Ok(state.store.list_audit(filter).await?)
}
