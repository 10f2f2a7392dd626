//! OpenAPI glue both services share (features `ops` + `openapi`): the `X-Request-Id` header on
//! every operation, and the `GET /openapi.json` route.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Object, OpenApi, RefOr, Required, Type};

const REQUEST_ID_HELP: &str = "Request id: the caller's when 1-128 characters of letters, digits and \
    `-_.:+/=@`, else a generated UUID; logged with every line of the request and forwarded to the auth-service";

/// Adds the optional `X-Request-Id` request header to every operation of `doc`, and the
/// `X-Request-Id` response header to every response.
pub fn add_request_id(doc: &mut OpenApi) {
    let string = || Object::with_type(Type::String);
    for item in doc.paths.paths.values_mut() {
        for operation in crate::openapi::operations(item) {
            add_to_operation(operation, &string);
        }
    }
}

fn add_to_operation(operation: &mut Operation, string: &impl Fn() -> Object) {
    let parameter = ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(REQUEST_ID_HELP))
        .schema(Some(string()))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(parameter);
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            let header = HeaderBuilder::new().schema(string()).description(Some("The request id")).build();
            response.headers.insert("X-Request-Id".into(), header);
        }
    }
}

/// `GET /openapi.json`: the document `build` returns, built and serialized at the first request
/// and kept. Nothing runs at start-up: building a document executes a large part of a service's
/// code once, and every page of code touched at start stays resident for the process's life.
pub fn lazy_router<S: Clone + Send + Sync + 'static>(build: fn() -> OpenApi) -> Router<S> {
    let body = std::sync::Arc::new(std::sync::OnceLock::<Bytes>::new());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let body = body.get_or_init(|| serialize(&build())).clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
        }),
    )
}

fn serialize(doc: &OpenApi) -> Bytes {
    Bytes::from(serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec()))
}

/// `GET /openapi.json`: `doc`, serialized once.
pub fn router<S: Clone + Send + Sync + 'static>(doc: &OpenApi) -> Router<S> {
    let body = serialize(doc);
    Router::new().route(
        "/openapi.json",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
        }),
    )
}
