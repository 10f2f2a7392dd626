//! Hasura action handlers: `POST /hasura/actions/signup` and `POST /hasura/actions/login`.
//!
//! Hasura calls them with `{"action":{"name":...},"input":{...},"session_variables":{...}}`.
//! The input is `{"email","password"}` (signup also takes `first_name`/`firstName` and
//! `last_name`/`lastName`), or the same object one level deeper when the action has a single
//! named input argument (`{"input":{"credentials":{"email","password"}}}`): when `input` has
//! neither `email` nor `password` and holds exactly one object, that object is used.
//!
//! Answers: signup `{"id","email"}` (never the hash), login `{"token":<access>,"refresh":<refresh>}`.
//! Failures use Hasura's action error shape `{"message":...,"extensions":{...}}` with a 4xx
//! status: field problems are 400 with every message joined in `message` and the field map
//! (`{"password":[...]}`) as `extensions`; a taken email alone is exactly
//! `{"message":"This email already exists."}`; bad credentials 401 `Invalid credentials`;
//! a throttled login 429 with `Retry-After`.
//!
//! With `HASURA_ACTION_SECRET` set, every call must carry it in `X-Hasura-Action-Secret`
//! (compared in constant time), else 401 `Invalid action secret`. Signup follows
//! `ALLOW_CREATE_USER`: `off` answers 404 `Not found`; `admin` needs the session variable
//! `x-hasura-role` = `admin` *and* a configured action secret, because session variables
//! travel in the body and only the secret proves that Hasura (which sets them from a
//! verified token) sent the call.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared_user::http::Body;

use crate::client_ip::ClientIp;
use crate::service::{self, EMAIL_TAKEN, Registration, ServiceError};
use crate::settings::CreateUserPolicy;
use crate::state::AppState;

/// Header carrying the shared action secret.
pub const SECRET_HEADER: &str = "x-hasura-action-secret";
/// Hasura's role session variable.
const ROLE_VARIABLE: &str = "x-hasura-role";
/// The Hasura role allowed to sign users up under `ALLOW_CREATE_USER=admin`.
const ADMIN_ROLE: &str = "admin";
/// graphql-jwt's permission message, also used here (Hasura clients see GraphQL errors).
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action";

/// A Hasura action error answer: `{"message":...,"extensions":{...}}` with a 4xx/5xx status.
#[derive(Debug, Clone)]
pub struct ActionError {
    status: StatusCode,
    message: String,
    extensions: Option<Value>,
    retry_after: Option<u64>,
}

impl ActionError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), extensions: None, retry_after: None }
    }
}

impl From<ServiceError> for ActionError {
    /// The Hasura mapping of the service's errors.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Fields(fields) => {
                let taken_only = fields.0.len() == 1 && fields.0.get("email") == Some(&json!([EMAIL_TAKEN]));
                let mut error = ActionError::new(StatusCode::BAD_REQUEST, service::field_summary(&fields));
                if !taken_only {
                    error.extensions = Some(Value::Object(fields.0));
                }
                error
            }
            ServiceError::BadCredentials
            | ServiceError::Token(_)
            | ServiceError::Revoked
            | ServiceError::NoActiveAccount
            | ServiceError::Unauthenticated(_) => ActionError::new(StatusCode::UNAUTHORIZED, "Invalid credentials"),
            ServiceError::MfaRequired(challenge) => ActionError {
                extensions: Some(json!({
                    "code": "mfa_required",
                    "mfa_token": challenge.mfa_token,
                    "methods": challenge.methods,
                })),
                ..ActionError::new(StatusCode::UNAUTHORIZED, crate::error::MFA_REQUIRED)
            },
            ServiceError::MfaRefused => ActionError::new(StatusCode::UNAUTHORIZED, crate::error::MFA_CODE_INVALID),
            ServiceError::MfaTokenRefused => {
                ActionError::new(StatusCode::UNAUTHORIZED, crate::error::MFA_TOKEN_INVALID)
            }
            ServiceError::MfaEnrolmentRequired => {
                ActionError::new(StatusCode::FORBIDDEN, crate::error::MFA_ENROLMENT_REQUIRED)
            }
            ServiceError::MfaStepUpRequired => {
                ActionError::new(StatusCode::FORBIDDEN, crate::error::MFA_STEP_UP_REQUIRED)
            }
            ServiceError::Forbidden => ActionError::new(StatusCode::FORBIDDEN, PERMISSION_DENIED),
            ServiceError::NotFound => ActionError::new(StatusCode::NOT_FOUND, "Not found"),
            ServiceError::Throttled(secs) => ActionError {
                retry_after: Some(secs),
                ..ActionError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Request was throttled. Expected available in {secs} seconds."),
                )
            },
            ServiceError::Unavailable(reason) => {
                ActionError::new(StatusCode::SERVICE_UNAVAILABLE, crate::error::unavailable(&reason))
            }
            ServiceError::Internal(reason) => {
                ActionError::new(StatusCode::INTERNAL_SERVER_ERROR, crate::error::internal(&reason))
            }
        }
    }
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("message".into(), Value::from(self.message));
        if let Some(extensions) = self.extensions {
            body.insert("extensions".into(), extensions);
        }
        let mut response = shared_user::http::json(self.status, body);
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The parts of an action call we use.
struct ActionCall {
    input: Map<String, Value>,
    session_variables: Map<String, Value>,
}

fn parse_call(body: Result<Bytes, BytesRejection>) -> Result<ActionCall, ActionError> {
    let bytes = body.map_err(|_| ActionError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large."))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ActionError::new(StatusCode::BAD_REQUEST, format!("JSON parse error - {e}")))?;
    let Value::Object(mut call) = value else {
        return Err(ActionError::new(StatusCode::BAD_REQUEST, "Expected a JSON object with \"input\"."));
    };
    let mut input = match call.remove("input") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(input)) => input,
        Some(_) => return Err(ActionError::new(StatusCode::BAD_REQUEST, "\"input\" must be an object.")),
    };
    // A single named input argument (`signup(credentials: SignupInput!)`) arrives one level deeper.
    if !input.contains_key("email")
        && !input.contains_key("password")
        && input.len() == 1
        && let Some(Value::Object(inner)) = input.values().next()
    {
        input = inner.clone();
    }
    let session_variables = match call.remove("session_variables") {
        Some(Value::Object(vars)) => vars,
        _ => Map::new(),
    };
    Ok(ActionCall { input, session_variables })
}

/// Whether the call carries the configured action secret (always true when none is set).
fn check_secret(state: &AppState, headers: &HeaderMap) -> Result<(), ActionError> {
    let Some(secret) = &state.settings.hasura_action_secret else { return Ok(()) };
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if secret.matches(given) {
        Ok(())
    } else {
        Err(ActionError::new(StatusCode::UNAUTHORIZED, "Invalid action secret"))
    }
}

/// Session variable names are case-insensitive in Hasura.
fn session_role(vars: &Map<String, Value>) -> Option<&str> {
    vars.iter().find(|(k, _)| k.eq_ignore_ascii_case(ROLE_VARIABLE)).and_then(|(_, v)| v.as_str())
}

/// Accepts the GraphQL spelling of a field (`firstName`) for our name (`first_name`).
fn alias(input: &mut Map<String, Value>, ours: &str, theirs: &str) {
    if !input.contains_key(ours)
        && let Some(value) = input.remove(theirs)
    {
        input.insert(ours.to_owned(), value);
    }
}

/// The signup input of an action call as the service's [`Registration`]: `email` and
/// `password` required, `first_name` (or `firstName`) and `last_name` (or `lastName`) optional.
/// A missing, null or non-string field is handed on as a read error, reported together with
/// the service's own findings.
fn registration(mut input: Map<String, Value>) -> Registration {
    alias(&mut input, "first_name", "firstName");
    alias(&mut input, "last_name", "lastName");
    let input = Body(input);
    let mut fields = input.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    let first_name = fields.optional("first_name").unwrap_or_default();
    let last_name = fields.optional("last_name").unwrap_or_default();
    Registration { email, password, first_name, last_name, read_errors: fields.finish().err() }
}

/// `POST /hasura/actions/signup`: creates a user (as `ALLOW_CREATE_USER` permits) -> `{"id","email"}`.
pub async fn signup_action(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ActionError> {
    check_secret(&state, &headers)?;
    let policy = state.settings.allow_create_user;
    if policy == CreateUserPolicy::Off {
        return Err(ServiceError::NotFound.into());
    }
    let call = parse_call(body)?;
    if policy == CreateUserPolicy::Admin {
        let trusted = state.settings.hasura_action_secret.is_some();
        if !trusted || session_role(&call.session_variables) != Some(ADMIN_ROLE) {
            return Err(ServiceError::Forbidden.into());
        }
    }
    let user = service::register(&state, registration(call.input), ip).await?;
    Ok(shared_user::http::json(StatusCode::OK, json!({"id": user.id, "email": user.email})))
}

/// `POST /hasura/actions/login`: email + password -> `{"token":<access>,"refresh":<refresh>}`,
/// throttled like `POST /auth/token/`.
pub async fn login_action(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ActionError> {
    check_secret(&state, &headers)?;
    let call = parse_call(body)?;
    let body = Body(call.input);
    let mut fields = body.fields();
    let email = fields.required("email");
    let password = fields.required("password");
    fields.finish().map_err(ServiceError::from)?;
    let session = service::log_in(&state, &email, &password, ip).await?;
    Ok(shared_user::http::json(
        StatusCode::OK,
        json!({"token": session.access.token, "refresh": session.refresh.token}),
    ))
}
