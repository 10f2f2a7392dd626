//! `POST /graphql`: a GraphQL schema compatible with django-graphql-jwt clients, also usable
//! as a Hasura remote schema (introspection is on).
//!
//! Mutations: `tokenAuth`, `verifyToken`, `refreshToken`, `revokeToken` (graphql-jwt's names,
//! arguments and result fields) and `createUser` / its alias `userCreate` (only with
//! `ALLOW_CREATE_USER=open`; `username` is the email, `profile { role }` the user's role).
//! Queries: `me` and its aliases `whoami` and `currentUser` (the signed-in user), `users`
//! (staff and the `USERS_READER_GROUP`). `UserType.username` is the email.
//!
//! Limits per operation: depth, root fields (aliases included, `GRAPHQL_MAX_ROOT_FIELDS`) and
//! complexity (`GRAPHQL_MAX_COMPLEXITY`), each refused with one error before any field runs.
//! Sessions: `sessions` (the signed-in user's live sessions) and `logoutAll` (end them all and
//! refuse every earlier access token, like `POST /auth/logout-all/`).
//!
//! Differences from graphql-jwt, on purpose:
//! - Tokens are ours (`token_type`, `exp`, `iat`, `jti`, `user_id`, plus the claim preset);
//!   `payload` holds those claims followed by graphql-jwt's `username` (the email) and
//!   `origIat` (when the session began, kept across refreshes, also for the access tokens a
//!   refresh mints: they record it in their `jti` rather than in an extra claim).
//! - `refreshToken` takes our refresh token in either argument: `refreshToken` (long-running
//!   style) or `token` (single-token style). An access token is not a refresh token
//!   ("Invalid refresh token"): refreshing with a still-valid access token would let a stolen
//!   one live forever. `refreshExpiresIn` is the `exp` of the refresh token the client holds
//!   afterwards, and `refreshToken` is that token (a new one when `ROTATE_REFRESH_TOKENS`).
//! - `tokenAuth` takes `email` or `username` (the username is the email); `refreshExpiresIn`
//!   and `refreshToken` are always present.
//! - The signed-in user comes from `Authorization: JWT <token>` (scheme compared
//!   case-insensitively) or `Bearer <token>`; there is no `JWT` cookie and no token argument.
//!
//! Errors go in `errors[]` with HTTP 200 and graphql-jwt's messages. A throttled `tokenAuth`
//! answers "Request was throttled. Expected available in N seconds." with
//! `extensions: {"code":"throttled","retryAfter":N}`; validation problems of `createUser` join
//! every message and carry the field map as `extensions` (like the Hasura actions).

use std::net::IpAddr;

use async_graphql::{
    Context, EmptySubscription, Error, ErrorExtensions, ID, InputValueError, InputValueResult, Name, Object,
    ParseRequestError, PathSegment, Scalar, ScalarType, Schema, SimpleObject, Value as GqlValue,
};
use async_graphql_axum::GraphQLRequest;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Extension, body};
use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};
use shared_user::http::MAX_BODY;
use shared_user::user::format_datetime;
use shared_user::{AccessGroup, TokenError, User};

use crate::client_ip::ClientIp;
use crate::roles;
use crate::service::{self, AccessRefused, EMAIL_TAKEN, Registration, ServiceError};
use crate::settings::CreateUserPolicy;
use crate::settings::Settings;
use crate::state::AppState;
use crate::tokens::Fault;

mod limits;

/// Bad credentials on `tokenAuth` (wrong password, unknown or inactive user alike).
pub const INVALID_CREDENTIALS: &str = "Please enter valid credentials";
/// Not a JWT, or a signature that none of our keys made.
pub const DECODE_ERROR: &str = "Error decoding signature";
/// A correctly signed token past its `exp`.
pub const EXPIRED: &str = "Signature has expired";
/// Any other unacceptable token.
pub const INVALID_TOKEN: &str = "Invalid token";
/// A refresh token that is unknown, revoked, rotated away or not a refresh token.
pub const INVALID_REFRESH_TOKEN: &str = "Invalid refresh token";
/// A correctly signed refresh token past its `exp`.
pub const REFRESH_EXPIRED: &str = "Refresh token is expired";
/// Not signed in, not staff, or registration not open.
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action";
/// A token of an inactive user.
pub const USER_DISABLED: &str = "User is disabled";
/// `verifyToken` without a token.
pub const TOKEN_REQUIRED: &str = "Token is required";
/// `refreshToken` without a token.
pub const REFRESH_REQUIRED: &str = "Refresh token is required";

/// The schema served at `/graphql`.
pub type GatehouseSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deep enough for the standard introspection query (Hasura's included), shallow enough to
/// refuse absurd nesting.
const MAX_DEPTH: usize = 32;

/// Builds the schema over `state`.
pub fn schema(state: AppState) -> GatehouseSchema {
    let (root_fields, complexity) = (state.settings.graphql_max_root_fields, state.settings.graphql_max_complexity);
    Schema::build(Query, Mutation, EmptySubscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(complexity)
        .extension(limits::RootFieldLimit(root_fields))
        .finish()
}

/// The [`schema`], built at the first GraphQL request instead of at start: building it runs a
/// large part of async-graphql's code and this module's once, and every page of code touched at
/// start stays resident for the life of the process (idle RSS).
#[derive(Clone, Default)]
pub struct LazySchema(std::sync::Arc<std::sync::OnceLock<GatehouseSchema>>);

/// The `/graphql` route: POST only.
pub fn route(_state: &AppState) -> MethodRouter<AppState> {
    post(graphql_endpoint).layer(Extension(LazySchema::default()))
}

/// Who is calling: the token of the `Authorization` header and the client address.
#[derive(Debug, Clone, Default)]
struct Caller {
    token: Option<String>,
    ip: Option<IpAddr>,
}

/// The token of `Authorization: JWT <token>` (graphql-jwt's prefix, any case) or of one of the
/// configured schemes (`Bearer`), from the configured header. Anything else is anonymous, like
/// graphql-jwt (which then looks for a cookie).
fn header_token(headers: &HeaderMap, config: &Settings) -> Option<String> {
    let value = headers.get(config.auth_header_name.as_str())?.to_str().ok()?;
    let mut words = value.split_whitespace();
    let (scheme, token) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let known =
        scheme.eq_ignore_ascii_case("JWT") || config.auth_header_types.iter().any(|t| t.eq_ignore_ascii_case(scheme));
    known.then(|| token.to_owned())
}

/// A request body graphql could not read: 400 (413 when too large) in the GraphQL envelope.
pub struct Rejection(ParseRequestError);

impl From<ParseRequestError> for Rejection {
    fn from(e: ParseRequestError) -> Self {
        Rejection(e)
    }
}

fn envelope_error(status: StatusCode, message: &str) -> Response {
    shared_user::http::json(status, json!({"errors": [{"message": message}]}))
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self.0 {
            ParseRequestError::PayloadTooLarge => {
                envelope_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
            }
            other => envelope_error(StatusCode::BAD_REQUEST, &other.to_string()),
        }
    }
}

/// `POST /graphql`: executes one GraphQL request; the answer is always `application/json`.
pub async fn graphql_endpoint(
    State(state): State<AppState>,
    Extension(lazy): Extension<LazySchema>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let schema = lazy.0.get_or_init(|| schema(state.clone()));
    let (parts, raw) = request.into_parts();
    // The body is read here, within our limit, before the GraphQL extractor streams it.
    let Ok(bytes) = body::to_bytes(raw, MAX_BODY).await else {
        return envelope_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.");
    };
    let caller = Caller { token: header_token(&parts.headers, &state.settings), ip };
    let request = Request::from_parts(parts, body::Body::from(bytes));
    let request = match GraphQLRequest::<Rejection>::from_request(request, &()).await {
        Ok(r) => r.into_inner(),
        Err(rejection) => return rejection.into_response(),
    };
    let mut response = schema.execute(request.data(caller)).await;
    null_failed_root_fields(&mut response);
    shared_user::http::json(StatusCode::OK, response)
}

/// async-graphql leaves a failed field out of `data` (and `data` null when every field
/// failed); the GraphQL spec and graphene answer it as `null`: `{"data":{"tokenAuth":null}}`.
fn null_failed_root_fields(response: &mut async_graphql::Response) {
    let failed: Vec<&str> = response
        .errors
        .iter()
        .filter_map(|e| match e.path.as_slice() {
            [PathSegment::Field(name)] => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    if response.data == GqlValue::Null {
        response.data = GqlValue::Object(Default::default());
    }
    if let GqlValue::Object(data) = &mut response.data {
        for name in failed {
            data.entry(Name::new(name)).or_insert(GqlValue::Null);
        }
    }
}

/// Any JSON value (graphene's `GenericScalar`): the `payload` of the token mutations.
#[derive(Debug, Clone)]
pub struct GenericScalar(pub Value);

#[Scalar(name = "GenericScalar")]
impl ScalarType for GenericScalar {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        value.into_json().map(GenericScalar).map_err(InputValueError::custom)
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::from_json(self.0.clone()).unwrap_or(GqlValue::Null)
    }
}

/// An ISO 8601 UTC time, as the REST user JSON prints it (`2026-11-22T19:16:07.250330Z`).
#[derive(Debug, Clone)]
pub struct DateTime(pub NaiveDateTime);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match &value {
            GqlValue::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| DateTime(t.naive_utc()))
                .map_err(InputValueError::custom),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::String(format_datetime(&self.0))
    }
}

/// One access group of a user.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "AccessGroupType")]
pub struct AccessGroupType {
    /// Group name.
    name: String,
    /// Optional level within the group.
    level: Option<String>,
}

/// A user, without any password material.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "UserType")]
pub struct UserType {
    /// The integer id, as a GraphQL ID (graphene-django's convention).
    id: ID,
    /// Email, the username.
    email: String,
    /// First name.
    first_name: String,
    /// Last name.
    last_name: String,
    /// When the account was created.
    date_joined: DateTime,
    /// Last successful login.
    last_login: Option<DateTime>,
    /// Inactive users cannot log in.
    is_active: bool,
    /// Staff flag.
    is_staff: bool,
    /// Superuser flag.
    is_superuser: bool,
    /// Access groups, by name.
    access_groups: Vec<AccessGroupType>,
    /// The username, which is the email (graphene-django / graphql-jwt clients read it).
    username: String,
}

impl From<User> for UserType {
    fn from(u: User) -> Self {
        UserType {
            id: ID(u.id.to_string()),
            username: u.email.clone(),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            date_joined: DateTime(u.date_joined),
            last_login: u.last_login.map(DateTime),
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
            access_groups: u
                .access_groups
                .into_iter()
                .map(|AccessGroup { name, level }| AccessGroupType { name, level })
                .collect(),
        }
    }
}

/// `tokenAuth` result (graphql-jwt's `ObtainJSONWebToken`).
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "ObtainJSONWebToken")]
pub struct ObtainJsonWebToken {
    /// The access token.
    token: String,
    /// Its claims.
    payload: GenericScalar,
    /// Expiry of the refresh token, epoch seconds.
    refresh_expires_in: i64,
    /// The refresh token.
    refresh_token: String,
    /// The signed-in user.
    user: UserType,
}

/// `verifyToken` result.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Verify")]
pub struct Verify {
    /// The token's claims.
    payload: GenericScalar,
}

/// `refreshToken` result.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Refresh")]
pub struct Refresh {
    /// The new access token.
    token: String,
    /// Its claims.
    payload: GenericScalar,
    /// Expiry of `refreshToken`, epoch seconds.
    refresh_expires_in: i64,
    /// The refresh token to use next (a new one when rotating, else the one presented).
    refresh_token: String,
}

/// A live session (refresh-token family), as `GET /auth/sessions/` lists it.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "SessionType")]
pub struct SessionType {
    /// Session id (`DELETE /auth/sessions/{id}/` ends it).
    id: String,
    /// Login time.
    created: DateTime,
    /// Last refresh.
    last_used: DateTime,
    /// When its refresh token expires.
    expires: DateTime,
    /// Client address at login.
    ip: Option<String>,
    /// User agent at login.
    user_agent: Option<String>,
}

impl From<crate::store::sessions::SessionRow> for SessionType {
    fn from(s: crate::store::sessions::SessionRow) -> Self {
        Self {
            id: s.id,
            created: DateTime(s.created_at),
            last_used: DateTime(s.last_used_at),
            expires: DateTime(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// `logoutAll` result.
#[derive(Debug, Clone, SimpleObject)]
pub struct LogoutAll {
    /// When the sessions were ended, epoch seconds.
    revoked: i64,
}

/// `revokeToken` result.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Revoke")]
pub struct Revoke {
    /// When the token was revoked, epoch seconds.
    revoked: i64,
}

/// `createUser` / `userCreate` result: the new user, signed in.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "CreateUser")]
pub struct CreateUser {
    /// The new user.
    user: UserType,
    /// An access token for it.
    token: String,
    /// A refresh token for it.
    refresh_token: String,
    /// The tutorial's profile: the user's role.
    profile: Profile,
}

/// The Graphene tutorial's user profile.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "ProfileType")]
pub struct Profile {
    /// The user's role ([`crate::roles::role`]): the `USERS_READER_GROUP` for its members,
    /// else `HASURA_DEFAULT_ROLE` (`user`); the same rule picks the Hasura default role.
    role: String,
}

/// graphql-jwt's `tokenAuth` answer for a new session.
async fn obtained(state: &AppState, session: service::Session) -> Result<Option<ObtainJsonWebToken>, Error> {
    let started = service::session_started(state, &session.refresh.jti).await.map_err(fail)?;
    let payload = jwt_payload(session.access.claims, Some(&session.user.email), started);
    Ok(Some(ObtainJsonWebToken {
        token: session.access.token,
        payload,
        refresh_expires_in: session.refresh.exp,
        refresh_token: session.refresh.token,
        user: session.user.into(),
    }))
}

/// Field map -> error extensions, one entry per field.
fn field_extensions(fields: Map<String, Value>) -> Error {
    let summary = service::field_summary(&shared_user::http::FieldErrors(fields.clone()));
    let taken_only = fields.len() == 1 && fields.get("email") == Some(&json!([EMAIL_TAKEN]));
    if taken_only {
        return Error::new(summary);
    }
    Error::new(summary).extend_with(|_, ext| {
        for (field, messages) in fields {
            ext.set(field, GqlValue::from_json(messages).unwrap_or(GqlValue::Null));
        }
    })
}

/// The GraphQL mapping of the service's errors, for operations without a specific message.
fn fail(e: ServiceError) -> Error {
    match e {
        ServiceError::Fields(fields) => field_extensions(fields.0),
        ServiceError::BadCredentials => Error::new(INVALID_CREDENTIALS),
        ServiceError::Token(_) | ServiceError::Revoked => Error::new(INVALID_TOKEN),
        ServiceError::NoActiveAccount => Error::new(USER_DISABLED),
        ServiceError::Unauthenticated(reason) => Error::new(match reason {
            AccessRefused::UnknownUser => PERMISSION_DENIED,
            AccessRefused::Inactive => USER_DISABLED,
            AccessRefused::Token(_) | AccessRefused::NoUserId | AccessRefused::Revoked => INVALID_TOKEN,
        }),
        ServiceError::MfaRequired(challenge) => Error::new(crate::error::MFA_REQUIRED).extend_with(|_, ext| {
            ext.set("code", "mfa_required");
            ext.set("mfaToken", challenge.mfa_token.clone());
            ext.set("methods", challenge.methods.iter().map(|m| GqlValue::from(*m)).collect::<Vec<_>>());
        }),
        ServiceError::MfaRefused => {
            Error::new(crate::error::MFA_CODE_INVALID).extend_with(|_, ext| ext.set("code", "mfa_code_invalid"))
        }
        ServiceError::MfaTokenRefused => {
            Error::new(crate::error::MFA_TOKEN_INVALID).extend_with(|_, ext| ext.set("code", "mfa_token_invalid"))
        }
        ServiceError::MfaEnrolmentRequired => Error::new(crate::error::MFA_ENROLMENT_REQUIRED)
            .extend_with(|_, ext| ext.set("code", "mfa_enrolment_required")),
        ServiceError::MfaStepUpRequired => {
            Error::new(crate::error::MFA_STEP_UP_REQUIRED).extend_with(|_, ext| ext.set("code", "mfa_required"))
        }
        ServiceError::Forbidden | ServiceError::NotFound => Error::new(PERMISSION_DENIED),
        ServiceError::Throttled(secs) => {
            Error::new(format!("Request was throttled. Expected available in {secs} seconds.")).extend_with(|_, ext| {
                ext.set("code", "throttled");
                ext.set("retryAfter", secs);
            })
        }
        ServiceError::Unavailable(reason) => Error::new(crate::error::unavailable(&reason)),
        ServiceError::Internal(reason) => Error::new(crate::error::internal(&reason)),
    }
}

/// graphql-jwt's `payload`: the token's claims, then graphql-jwt's `username` (the email) and
/// `origIat` (when the session began, kept across refreshes).
fn jwt_payload(mut claims: Map<String, Value>, username: Option<&str>, orig_iat: i64) -> GenericScalar {
    if let Some(username) = username {
        claims.insert("username".into(), Value::from(username));
    }
    claims.insert("origIat".into(), Value::from(orig_iat));
    GenericScalar(Value::Object(claims))
}

/// graphql-jwt's message for a refused token.
fn token_error(state: &AppState, token: &str, e: &TokenError) -> Error {
    Error::new(match state.keys.fault(token, e) {
        Fault::Malformed => DECODE_ERROR,
        Fault::Expired => EXPIRED,
        Fault::Invalid => INVALID_TOKEN,
    })
}

/// graphql-jwt's message for a refused refresh token.
fn refresh_error(state: &AppState, token: &str, e: ServiceError) -> Error {
    match e {
        ServiceError::Token(e) if state.keys.fault(token, &e) == Fault::Expired => Error::new(REFRESH_EXPIRED),
        ServiceError::Token(_) => Error::new(INVALID_REFRESH_TOKEN),
        other => fail(other),
    }
}

fn caller<'a>(ctx: &'a Context<'_>) -> &'a Caller {
    static ANONYMOUS: Caller = Caller { token: None, ip: None };
    ctx.data_opt::<Caller>().unwrap_or(&ANONYMOUS)
}

/// The active user of the header token (graphql-jwt's `login_required`).
async fn viewer(ctx: &Context<'_>) -> Result<User, Error> {
    let state = ctx.data::<AppState>()?;
    let Some(token) = caller(ctx).token.as_deref() else {
        return Err(Error::new(PERMISSION_DENIED));
    };
    match service::authenticate_access(state, token).await {
        Ok((user, _)) => Ok(user),
        Err(ServiceError::Unauthenticated(AccessRefused::Token(e))) => Err(token_error(state, token, &e)),
        Err(e) => Err(fail(e)),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Queries.
#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user (`Authorization: JWT <token>` or `Bearer <token>`).
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<UserType>, Error> {
        Ok(Some(viewer(ctx).await?.into()))
    }

    /// Alias of `me`.
    async fn whoami(&self, ctx: &Context<'_>) -> Result<Option<UserType>, Error> {
        Ok(Some(viewer(ctx).await?.into()))
    }

    /// Every user, by id (staff, superusers and members of `USERS_READER_GROUP`).
    async fn users(&self, ctx: &Context<'_>) -> Result<Option<Vec<UserType>>, Error> {
        let me = viewer(ctx).await?;
        let users = service::list_users(ctx.data::<AppState>()?, &me).await.map_err(fail)?;
        Ok(Some(users.into_iter().map(UserType::from).collect()))
    }

    /// Alias of `me` (the Graphene tutorial's name).
    async fn current_user(&self, ctx: &Context<'_>) -> Result<Option<UserType>, Error> {
        Ok(Some(viewer(ctx).await?.into()))
    }

    /// One page of the signed-in user's live sessions, newest first (100 a page; `page`
    /// from 1, default 1; a page past the end is the error "Invalid page.").
    async fn sessions(&self, ctx: &Context<'_>, page: Option<i32>) -> Result<Option<Vec<SessionType>>, Error> {
        let me = viewer(ctx).await?;
        let page = page.map_or(1, i64::from);
        let rows = crate::service::sessions::sessions_of(ctx.data::<AppState>()?, &me, page).await.map_err(fail)?;
        let rows = rows.ok_or_else(|| Error::new(crate::params::INVALID_PAGE))?;
        Ok(Some(rows.into_iter().map(SessionType::from).collect()))
    }
}

/// Mutations.
#[derive(Debug, Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Email (or `username`, which is the email) and password -> tokens. Throttled like
    /// `POST /auth/token/`.
    async fn token_auth(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        password: String,
    ) -> Result<Option<ObtainJsonWebToken>, Error> {
        let state = ctx.data::<AppState>()?;
        let Some(login) = non_empty(email).or_else(|| non_empty(username)) else {
            return Err(Error::new(INVALID_CREDENTIALS));
        };
        if password.trim().is_empty() {
            return Err(Error::new(INVALID_CREDENTIALS));
        }
        let session = service::log_in(state, &login, &password, caller(ctx).ip).await.map_err(fail)?;
        obtained(state, session).await
    }

    /// The second step of a `tokenAuth` that answered `mfa_required` (its `mfaToken`
    /// extension): a TOTP or recovery code -> tokens, as `POST /auth/token/mfa/`.
    async fn token_auth_mfa(
        &self,
        ctx: &Context<'_>,
        mfa_token: String,
        code: String,
    ) -> Result<Option<ObtainJsonWebToken>, Error> {
        let state = ctx.data::<AppState>()?;
        let session =
            service::mfa::finish_login_with_code(state, &mfa_token, &code, caller(ctx).ip).await.map_err(fail)?;
        obtained(state, session).await
    }

    /// Checks a token of ours (access or refresh) and returns its claims.
    async fn verify_token(&self, ctx: &Context<'_>, token: Option<String>) -> Result<Option<Verify>, Error> {
        let state = ctx.data::<AppState>()?;
        let Some(token) = non_empty(token) else {
            return Err(Error::new(TOKEN_REQUIRED));
        };
        let claims = match service::verify(state, &token).await {
            Ok(claims) => claims,
            Err(ServiceError::Token(e)) => return Err(token_error(state, &token, &e)),
            Err(e) => return Err(fail(e)),
        };
        let origin = service::token_origin(state, &claims).await.map_err(fail)?;
        Ok(Some(Verify { payload: jwt_payload(claims.raw, origin.username.as_deref(), origin.signed_in_at) }))
    }

    /// A refresh token (in `refreshToken`, or in `token`) -> a new access token, and a new
    /// refresh token when rotating.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
        token: Option<String>,
    ) -> Result<Option<Refresh>, Error> {
        let state = ctx.data::<AppState>()?;
        let Some(presented) = non_empty(refresh_token).or_else(|| non_empty(token)) else {
            return Err(Error::new(REFRESH_REQUIRED));
        };
        let refreshed =
            service::refresh_session(state, &presented).await.map_err(|e| refresh_error(state, &presented, e))?;
        let started = service::session_started(state, &refreshed.family).await.map_err(fail)?;
        let payload = jwt_payload(refreshed.access.claims, Some(&refreshed.user.email), started);
        Ok(Some(Refresh {
            token: refreshed.access.token,
            payload,
            refresh_expires_in: refreshed.refresh_exp,
            refresh_token: refreshed.refresh.map_or(presented, |r| r.token),
        }))
    }

    /// Revokes a refresh token (logout); revoking twice is "Invalid refresh token".
    async fn revoke_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<Option<Revoke>, Error> {
        let state = ctx.data::<AppState>()?;
        service::revoke_refresh(state, &refresh_token).await.map_err(|e| refresh_error(state, &refresh_token, e))?;
        Ok(Some(Revoke { revoked: now() }))
    }

    /// Registration, only with `ALLOW_CREATE_USER=open`: the same rules as
    /// `POST /auth/create-user/`; the new user is signed in. `username` is the email (the
    /// tutorials send both; they must then agree).
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        password: String,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> Result<Option<CreateUser>, Error> {
        sign_up(ctx, email, username, password, first_name, last_name).await
    }

    /// Alias of `createUser` (the Graphene tutorial's name).
    async fn user_create(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        password: String,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> Result<Option<CreateUser>, Error> {
        sign_up(ctx, email, username, password, first_name, last_name).await
    }

    /// Ends every session of the signed-in user and refuses every access token issued before
    /// now (`POST /auth/logout-all/`).
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<Option<LogoutAll>, Error> {
        let me = viewer(ctx).await?;
        crate::service::sessions::log_out_everywhere(ctx.data::<AppState>()?, &me).await.map_err(fail)?;
        Ok(Some(LogoutAll { revoked: now() }))
    }
}

/// `username` and `email` given together name different accounts.
pub const USERNAME_MISMATCH: &str = "username and email must be the same: the username is the email";

/// `createUser` / `userCreate`: one registration through [`service::register`].
async fn sign_up(
    ctx: &Context<'_>,
    email: Option<String>,
    username: Option<String>,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
) -> Result<Option<CreateUser>, Error> {
    let state = ctx.data::<AppState>()?;
    if state.settings.allow_create_user != CreateUserPolicy::Open {
        return Err(Error::new(PERMISSION_DENIED));
    }
    let (email, read_errors) = match (email, username) {
        (Some(e), Some(u)) if e.trim().to_lowercase() != u.trim().to_lowercase() => {
            return Err(Error::new(USERNAME_MISMATCH));
        }
        (Some(login), _) | (None, Some(login)) => (login, None),
        (None, None) => (String::new(), Some(service::field_error("email", &[shared_user::wire::msg::FIELD_REQUIRED]))),
    };
    let input = Registration {
        email,
        password,
        first_name: first_name.unwrap_or_default(),
        last_name: last_name.unwrap_or_default(),
        read_errors,
    };
    let user = service::register(state, input, caller(ctx).ip).await.map_err(fail)?;
    let role = roles::role(&state.settings, &user).to_owned();
    let session = service::start_session(state, user).await.map_err(fail)?;
    Ok(Some(CreateUser {
        user: session.user.into(),
        token: session.access.token,
        refresh_token: session.refresh.token,
        profile: Profile { role },
    }))
}
