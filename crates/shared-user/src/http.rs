//! axum glue for the Django REST framework wire shapes: request bodies parsed the way DRF parses
//! them (JSON or form), field errors, and JSON fallbacks for unknown paths and wrong methods.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::{Map, Value};

use crate::wire::{ErrorDetail, msg};

/// Largest request body accepted (the token endpoints take a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Registers `route` under `path` with and without its trailing slash (never a redirect).
pub fn both_slashes<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &str,
    route: MethodRouter<S>,
) -> Router<S> {
    let bare = path.trim_end_matches('/');
    if bare.is_empty() || bare == path {
        return router.route(path, route);
    }
    router.route(path, route.clone()).route(bare, route)
}

/// A JSON answer with exactly `Content-Type: application/json`.
pub fn json(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// A `{"detail": ...}` answer.
pub fn detail(status: StatusCode, text: &str) -> Response {
    json(status, ErrorDetail::new(text))
}

/// Fallback for unknown paths: 404 `{"detail":"Not found."}`.
pub async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, msg::NOT_FOUND)
}

/// Fallback for a known path with another method: 405 `{"detail":"Method \"GET\" not allowed."}`.
pub async fn method_not_allowed(method: Method) -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, &format!("Method \"{method}\" not allowed."))
}

/// Adds `WWW-Authenticate` to a 401 answer.
pub fn with_www_authenticate(mut response: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// 400 `{"detail":"JSON parse error - ..."}`.
    Parse(String),
    /// 400 `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`.
    NotAnObject(&'static str),
    /// 415 `{"detail":"Unsupported media type \"text/plain\" in request."}`.
    UnsupportedMediaType(String),
    /// 413 `{"detail":"Request body is too large."}`.
    TooLarge,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            BodyError::Parse(e) => detail(StatusCode::BAD_REQUEST, &format!("JSON parse error - {e}")),
            BodyError::NotAnObject(kind) => {
                let mut map = Map::new();
                map.insert(
                    "non_field_errors".into(),
                    Value::from(vec![format!("Invalid data. Expected a dictionary, but got {kind}.")]),
                );
                json(StatusCode::BAD_REQUEST, map)
            }
            BodyError::UnsupportedMediaType(ct) => {
                detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("Unsupported media type \"{ct}\" in request."))
            }
            BodyError::TooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large."),
        }
    }
}

/// A request body as DRF sees it: a JSON object, or a form (also a JSON object sent with curl's
/// default form content type), as a map of fields.
#[derive(Debug, Clone, Default)]
pub struct Body(pub Map<String, Value>);

fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn parse_json(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BodyError::NotAnObject(python_type(&other))),
        Err(e) => Err(BodyError::Parse(e.to_string())),
    }
}

impl Body {
    /// Parses `bytes` according to `content_type`.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, BodyError> {
        let essence = content_type
            .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let map = match essence.as_str() {
            "" => parse_json(bytes)?,
            "application/x-www-form-urlencoded" => {
                let trimmed = bytes.trim_ascii_start();
                if trimmed.starts_with(b"{") {
                    parse_json(bytes)?
                } else {
                    let pairs: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(bytes).map_err(|e| BodyError::Parse(e.to_string()))?;
                    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
                }
            }
            ct if ct == "application/json" || ct.ends_with("+json") => parse_json(bytes)?,
            _ => return Err(BodyError::UnsupportedMediaType(content_type.unwrap_or_default().to_owned())),
        };
        Ok(Body(map))
    }

    /// Starts validating fields.
    pub fn fields(&self) -> FieldCheck<'_> {
        FieldCheck { body: &self.0, errors: Map::new() }
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|_| BodyError::TooLarge.into_response())?;
        Body::parse(content_type.as_deref(), &bytes).map_err(IntoResponse::into_response)
    }
}

/// Collects DRF-style field errors while reading fields.
#[derive(Debug)]
pub struct FieldCheck<'a> {
    body: &'a Map<String, Value>,
    errors: Map<String, Value>,
}

impl FieldCheck<'_> {
    fn push(&mut self, field: &str, message: &str) {
        self.errors.insert(field.to_owned(), Value::from(vec![message.to_owned()]));
    }

    /// A required, non-blank string field (numbers are taken as their text, like DRF's CharField).
    pub fn required(&mut self, field: &str) -> String {
        match self.optional_inner(field, false) {
            Some(s) => s,
            None => {
                if !self.errors.contains_key(field) {
                    self.push(field, msg::FIELD_REQUIRED);
                }
                String::new()
            }
        }
    }

    /// An optional string field (blank allowed).
    pub fn optional(&mut self, field: &str) -> Option<String> {
        self.optional_inner(field, true)
    }

    fn optional_inner(&mut self, field: &str, allow_blank: bool) -> Option<String> {
        let text = match self.body.get(field)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => {
                self.push(field, msg::FIELD_NULL);
                return None;
            }
            _ => {
                self.push(field, msg::FIELD_NOT_STRING);
                return None;
            }
        };
        if !allow_blank && text.trim().is_empty() {
            self.push(field, msg::FIELD_BLANK);
            return None;
        }
        Some(text)
    }

    /// Adds a custom error for a field.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.errors.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::from(message.into()));
        }
    }

    /// `Ok(())` when every field was fine, else the 400 field map.
    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(FieldErrors(self.errors)) }
    }
}

/// 400 `{"field":["message", ...], ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldErrors(pub Map<String, Value>);

impl FieldErrors {
    /// 400 `{"non_field_errors":[message]}`.
    pub fn non_field(message: &str) -> Self {
        let mut map = Map::new();
        map.insert("non_field_errors".into(), Value::from(vec![message.to_owned()]));
        FieldErrors(map)
    }
}

impl IntoResponse for FieldErrors {
    fn into_response(self) -> Response {
        json(StatusCode::BAD_REQUEST, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_like_drf() {
        assert_eq!(Body::parse(Some("application/json"), b"").unwrap().0.len(), 0);
        assert!(matches!(Body::parse(Some("application/json"), b"not json"), Err(BodyError::Parse(_))));
        assert_eq!(Body::parse(Some("application/json"), b"[1]").unwrap_err(), BodyError::NotAnObject("list"));
        let form = Body::parse(Some("application/x-www-form-urlencoded"), b"email=a%40b.c&password=x").unwrap();
        assert_eq!(form.0["email"], "a@b.c");
        let curl = Body::parse(Some("application/x-www-form-urlencoded"), br#"{"email":"a@b.c"}"#).unwrap();
        assert_eq!(curl.0["email"], "a@b.c");
        assert!(matches!(Body::parse(Some("text/plain"), b"x"), Err(BodyError::UnsupportedMediaType(_))));
    }

    #[test]
    fn field_errors_follow_drf_messages() {
        let body = Body::parse(Some("application/json"), br#"{"a":"","b":null,"c":[1],"d":5}"#).unwrap();
        let mut f = body.fields();
        f.required("a");
        f.required("b");
        f.required("c");
        assert_eq!(f.required("d"), "5");
        f.required("e");
        let errors = f.finish().unwrap_err().0;
        assert_eq!(
            serde_json::to_string(&errors).unwrap(),
            r#"{"a":["This field may not be blank."],"b":["This field may not be null."],"c":["Not a valid string."],"e":["This field is required."]}"#
        );
    }
}
