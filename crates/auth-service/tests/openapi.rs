//! `GET /openapi.json`: a valid OpenAPI 3.1 document that describes every routed path, and
//! whose every operation is routed.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::Value;
use shared_user::testing::Backend;
use shared_user::testing::openapi::{routed_paths, schema_violations, undocumented};

async fn document(app: &TestApp) -> Value {
    let r = app.get_with("/openapi.json", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1() {
    let app = TestApp::new(Backend::Sqlite, &[]).await.expect("sqlite");
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "version: {}", doc["openapi"]);
    let violations = schema_violations(&doc);
    assert!(violations.is_empty(), "not valid OpenAPI 3.1: {violations:#?}");
}

#[test]
fn the_validator_rejects_a_broken_document() {
    let mut doc = serde_json::to_value(auth_service::openapi::document()).unwrap();
    doc["paths"]["/auth/token/"]["post"]["responses"]["200"] = serde_json::json!({"content": 5});
    doc.as_object_mut().unwrap().remove("info");
    assert!(schema_violations(&doc).len() >= 2, "{:#?}", schema_violations(&doc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routed_path_is_documented() {
    let app = TestApp::new(Backend::Sqlite, &[]).await.expect("sqlite");
    let doc = document(&app).await;
    let routed = routed_paths(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(routed.contains(&"/auth/token/".to_owned()) && routed.len() > 10, "the scan found {routed:?}");
    // The web console under /admin/ answers HTML pages, not the JSON API this document describes.
    let routed: Vec<String> = routed.into_iter().filter(|p| p != "/admin" && !p.starts_with("/admin/")).collect();
    let missing = undocumented(&doc, &routed);
    assert!(missing.is_empty(), "routed but missing from src/openapi.rs: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let app = TestApp::new(
        Backend::Sqlite,
        &[
            "--allow-create-user",
            "open",
            "--revocation-feed-token",
            "feed-token-0123456789",
            "--issuer",
            "http://127.0.0.1:8000",
        ],
    )
    .await
    .expect("sqlite");
    let doc = document(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{id}", "1");
            for form in [concrete.clone(), concrete.trim_end_matches('/').to_owned()] {
                let form = if form.is_empty() { "/".to_owned() } else { form };
                let body = (method == Method::POST).then_some("{}");
                let r = app.send(method.clone(), &form, body, &[]).await;
                let fallback = r.status == StatusCode::NOT_FOUND && r.text == r#"{"detail":"Not found."}"#;
                assert!(
                    !fallback && r.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {form}: {} {}",
                    r.status,
                    r.text
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} operations checked");
}
