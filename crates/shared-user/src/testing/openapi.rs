//! Checks of an OpenAPI document for the services' test suites: validation against the
//! official OpenAPI 3.1 JSON Schema (vendored in `tests/data/`, nothing is downloaded), and the
//! paths a crate routes in its source that the document does not describe.

use std::path::Path;

use serde_json::Value;

/// The official OpenAPI 3.1 schema (OAI, 2022-10-07, Apache-2.0), as published with the spec.
const OPENAPI_31_SCHEMA: &str = include_str!("../../tests/data/openapi-3.1-schema.json");

/// Every way `doc` breaks the OpenAPI 3.1 schema (empty when it is valid).
pub fn schema_violations(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(OPENAPI_31_SCHEMA).expect("the vendored OpenAPI schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("the vendored OpenAPI schema compiles");
    validator.iter_errors(doc).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// The paths routed in the Rust sources under `src` (string literals given to
/// `both_slashes(router, "...", ...)` and `.route("...", ...)`, comments skipped), sorted.
pub fn routed_paths(src: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).expect("read src dir").map(|e| e.expect("dir entry").path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for call in ["both_slashes(", ".route("] {
            for (at, _) in code.match_indices(call) {
                let args = &code[at + call.len()..];
                // `.route("/p", ...)`: the first argument; `both_slashes(r, "/p", ...)`: the second.
                let args = if call == ".route(" { args } else { args.split_once(',').map_or("", |(_, rest)| rest) };
                let args = args.trim_start();
                if let Some(rest) = args.strip_prefix('"')
                    && let Some((literal, _)) = rest.split_once('"')
                {
                    paths.push(literal.to_owned());
                }
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The routed paths (see [`routed_paths`]) that `doc` does not describe; a path routed without
/// its trailing slash counts as described by the slash form.
pub fn undocumented(doc: &Value, routed: &[String]) -> Vec<String> {
    let documented = doc["paths"].as_object().expect("a `paths` object");
    routed
        .iter()
        .filter(|p| !documented.contains_key(p.as_str()) && !documented.contains_key(&format!("{p}/")))
        .cloned()
        .collect()
}
