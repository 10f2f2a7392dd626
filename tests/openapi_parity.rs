//! The `/auth/*` operations a client-service proxies are described once: every one the
//! client's OpenAPI document lists is the auth-service's operation, as the auth-service's own
//! document describes it, plus only what the proxy adds (its `proxy` tag, a note after the
//! description, and its own answers: 502, 503, and 403 for a failed CSRF check).

use serde_json::{Map, Value};

/// The answers the proxy may add to an operation it passes on.
const PROXY_STATUSES: [&str; 3] = ["403", "502", "503"];

fn operations(doc: &Value, path: &str) -> Map<String, Value> {
    doc["paths"][path].as_object().cloned().unwrap_or_default()
}

#[test]
fn every_proxied_operation_is_the_auth_service_one() {
    let auth = serde_json::to_value(auth_service::openapi::document()).unwrap();
    let client = serde_json::to_value(client_service::openapi::document()).unwrap();
    let shared = serde_json::to_value(shared_user::openapi::proxied::document()).unwrap();
    let proxied: Vec<&String> = shared["paths"].as_object().unwrap().keys().collect();
    assert!(proxied.len() >= 10, "{proxied:?}");
    for path in proxied {
        let (from_auth, from_client) = (operations(&auth, path), operations(&client, path));
        assert!(!from_auth.is_empty(), "the auth-service documents {path}");
        assert!(!from_client.is_empty(), "the client documents {path}");
        assert_eq!(
            from_client.keys().collect::<Vec<_>>(),
            from_auth.keys().collect::<Vec<_>>(),
            "{path}: the same methods"
        );
        for (method, auth_op) in &from_auth {
            let mut client_op = from_client[method].clone();
            let mut auth_op = auth_op.clone();
            let at = format!("{method} {path}");
            assert_eq!(client_op["tags"], serde_json::json!(["proxy"]), "{at}: the client's tag");
            let (auth_text, client_text) = (auth_op["description"].as_str(), client_op["description"].as_str());
            assert!(
                client_text.unwrap_or_default().starts_with(auth_text.unwrap_or_default()),
                "{at}: the client keeps the description and may only add a note: {client_text:?} vs {auth_text:?}"
            );
            let client_responses = client_op["responses"].as_object().cloned().unwrap_or_default();
            let auth_responses = auth_op["responses"].as_object().cloned().unwrap_or_default();
            for (status, response) in &auth_responses {
                assert_eq!(client_responses.get(status), Some(response), "{at}: answer {status} as the auth-service's");
            }
            for status in client_responses.keys().filter(|s| !auth_responses.contains_key(*s)) {
                assert!(
                    PROXY_STATUSES.contains(&status.as_str()),
                    "{at}: {status} is neither the auth-service's nor the proxy's"
                );
            }
            for op in [&mut client_op, &mut auth_op] {
                let op = op.as_object_mut().unwrap();
                for part in ["tags", "description", "responses"] {
                    op.remove(part);
                }
            }
            assert_eq!(client_op, auth_op, "{at}: everything else (summary, id, parameters, body, security) identical");
        }
        let shared_ops = operations(&shared, path);
        for (method, auth_op) in &from_auth {
            let mut expected = shared_ops[method].clone();
            let mut actual = auth_op.clone();
            // Both services add the `X-Request-Id` header to every operation and answer.
            strip_request_id(&mut actual);
            strip_request_id(&mut expected);
            assert_eq!(actual, expected, "{method} {path}: the auth-service lists the shared description as it is");
        }
    }
}

/// `op` without the `X-Request-Id` parameter and response headers every operation carries.
fn strip_request_id(op: &mut Value) {
    let op = op.as_object_mut().expect("an operation object");
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        params.retain(|p| p["name"] != "X-Request-Id");
        if params.is_empty() {
            op.remove("parameters");
        }
    }
    for response in op.get_mut("responses").and_then(Value::as_object_mut).into_iter().flat_map(|r| r.values_mut()) {
        let response = response.as_object_mut().expect("a response object");
        if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
            headers.remove("X-Request-Id");
            if headers.is_empty() {
                response.remove("headers");
            }
        }
    }
}
