//! The client crate's OpenAPI document: valid OpenAPI 3.1, and every path the crate and the
//! demo route is described (the demo's document needs the `cli` feature).

use client_service::openapi;
use shared_user::testing::openapi::schema_violations;

#[track_caller]
fn assert_valid_openapi_3_1(name: &str, doc: utoipa::openapi::OpenApi) {
    let doc = serde_json::to_value(doc).unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{name}: {}", doc["openapi"]);
    let violations = schema_violations(&doc);
    assert!(violations.is_empty(), "{name}: not valid OpenAPI 3.1: {violations:#?}");
}

#[test]
fn the_crate_document_is_valid_openapi_3_1() {
    assert_valid_openapi_3_1("crate", openapi::document());
}

#[cfg(feature = "cli")]
#[test]
fn the_demo_document_is_valid_openapi_3_1() {
    assert_valid_openapi_3_1("demo", openapi::demo_document());
}

/// The scan covers the demo's routes too, so it needs the demo's document (`cli` feature).
#[cfg(feature = "cli")]
#[test]
fn every_routed_path_is_documented() {
    use shared_user::testing::openapi::{routed_paths, undocumented};

    let doc = serde_json::to_value(openapi::demo_document()).unwrap();
    let routed = routed_paths(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(routed.contains(&"/auth/token/logout/".to_owned()) && routed.len() >= 10, "the scan found {routed:?}");
    let missing = undocumented(&doc, &routed);
    assert!(missing.is_empty(), "routed but missing from src/openapi.rs: {missing:?}");
}

#[test]
fn the_crate_document_holds_the_crate_routes_only() {
    let doc = serde_json::to_value(openapi::document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/auth/token/") && paths.contains_key("/metrics"));
    assert!(!paths.contains_key("/api/test/"), "demo routes are not the crate's");
}
