//! `POST /graphql`: django-graphql-jwt compatible mutations and queries, errors in `errors[]`
//! with HTTP 200 and graphql-jwt's messages, and introspection for Hasura remote schemas.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::jsonwebtoken::Algorithm;
use shared_user::testing::Backend;

const ALICE: &str = "alice@example.com";
const PW: &str = "correct horse battery";
const STRONG: &str = "tangerine-voyage-42";
const NS: &str = "https://hasura.io/jwt/claims";

const TOKEN_AUTH: &str = "mutation TokenAuth($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) {
    token payload refreshExpiresIn refreshToken user { id email }
  }
}";
const VERIFY: &str = "mutation VerifyToken($token: String) { verifyToken(token: $token) { payload } }";
const REFRESH: &str = "mutation RefreshToken($refreshToken: String, $token: String) {
  refreshToken(refreshToken: $refreshToken, token: $token) { token payload refreshExpiresIn refreshToken }
}";
const REVOKE: &str =
    "mutation RevokeToken($refreshToken: String!) { revokeToken(refreshToken: $refreshToken) { revoked } }";
const USER_FIELDS: &str =
    "id email firstName lastName dateJoined lastLogin isActive isStaff isSuperuser accessGroups { name level }";

/// Posts a GraphQL request with an optional `Authorization` header value.
async fn gql(app: &TestApp, query: &str, variables: Value, authorization: Option<&str>) -> Value {
    let body = json!({"query": query, "variables": variables}).to_string();
    let headers: Vec<(&str, &str)> = authorization.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let r = app.send(Method::POST, "/graphql", Some(&body), &headers).await;
    assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
    r.json()
}

/// The single error's message, after checking the envelope (`data.<field>` null, `path`).
#[track_caller]
fn error_of(v: &Value, field: &str) -> String {
    assert_eq!(v["data"][field], Value::Null, "{v}");
    let errors = v["errors"].as_array().unwrap_or_else(|| panic!("no errors: {v}"));
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["path"], json!([field]), "{v}");
    assert!(errors[0]["locations"][0]["line"].is_number(), "{v}");
    errors[0]["message"].as_str().unwrap().to_owned()
}

/// A `payload` without graphql-jwt's `username` and `origIat`, which follow the token's claims.
fn claims_part(payload: &Value) -> Value {
    let mut map = payload.as_object().expect("payload object").clone();
    assert!(map.remove("origIat").is_some_and(|v| v.is_i64()), "origIat: {payload}");
    map.remove("username");
    Value::Object(map)
}

#[track_caller]
fn ok<'a>(v: &'a Value, field: &str) -> &'a Value {
    assert!(v.get("errors").is_none(), "{v}");
    &v["data"][field]
}

async fn token_auth(app: &TestApp, email: &str, password: &str) -> Value {
    gql(app, TOKEN_AUTH, json!({"email": email, "password": password}), None).await
}

async fn signed_in(app: &TestApp) -> (String, String) {
    let v = token_auth(app, ALICE, PW).await;
    let t = ok(&v, "tokenAuth");
    (t["token"].as_str().unwrap().to_owned(), t["refreshToken"].as_str().unwrap().to_owned())
}

async fn token_auth_returns_token_payload_refresh_and_user(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    for vars in [json!({"email": ALICE, "password": PW}), json!({"username": ALICE, "password": PW})] {
        let v = gql(&app, TOKEN_AUTH, vars, None).await;
        let t = ok(&v, "tokenAuth");
        let token = t["token"].as_str().unwrap();
        assert_eq!(claims_part(&t["payload"]), payload(token), "payload is the access token's claims");
        assert_eq!(payload_text(token), serde_json::to_string(&claims_part(&t["payload"])).unwrap(), "in token order");
        assert_eq!(t["payload"]["username"], ALICE, "graphql-jwt's username");
        assert_eq!(t["payload"]["token_type"], "access");
        let refresh = t["refreshToken"].as_str().unwrap();
        assert_eq!(payload(refresh)["token_type"], "refresh");
        assert_eq!(t["refreshExpiresIn"], payload(refresh)["exp"]);
        assert_eq!(t["user"], json!({"id": id.to_string(), "email": ALICE}));
        // The pair works on the REST side too.
        assert_eq!(app.get_bearer("/auth/user/", token).await.status, StatusCode::OK);
        let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // Trailing slash too.
    let body = json!({"query": TOKEN_AUTH, "variables": {"email": ALICE, "password": PW}}).to_string();
    let r = app.send(Method::POST, "/graphql/", Some(&body), &[]).await;
    assert!(r.json()["data"]["tokenAuth"]["token"].is_string(), "{}", r.text);
}

async fn token_auth_refuses_bad_credentials_with_one_message(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    app.add_user("bob@example.com", PW, false, &[]).await;
    app.set_active(id, false).await;
    for (email, password) in [("bob@example.com", "wrong"), ("ghost@example.com", PW), (ALICE, PW), ("", PW)] {
        let v = token_auth(&app, email, password).await;
        assert_eq!(error_of(&v, "tokenAuth"), "Please enter valid credentials");
    }
    let v = gql(&app, TOKEN_AUTH, json!({"password": PW}), None).await;
    assert_eq!(error_of(&v, "tokenAuth"), "Please enter valid credentials");
    // The exact envelope of the reference (G2).
    let v =
        gql(&app, "mutation { tokenAuth(email: \"x@example.com\", password: \"y\") { token } }", json!({}), None).await;
    assert_eq!(
        v,
        json!({"data": {"tokenAuth": null}, "errors": [{"message": "Please enter valid credentials",
               "locations": [{"line": 1, "column": 12}], "path": ["tokenAuth"]}]})
    );
}

async fn token_auth_is_throttled(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    for _ in 0..5 {
        assert_eq!(error_of(&token_auth(&app, ALICE, "nope").await, "tokenAuth"), "Please enter valid credentials");
    }
    let v = token_auth(&app, ALICE, PW).await;
    let message = error_of(&v, "tokenAuth");
    let secs = v["errors"][0]["extensions"]["retryAfter"].as_u64().expect("retryAfter");
    assert_eq!(message, format!("Request was throttled. Expected available in {secs} seconds."));
    assert_eq!(v["errors"][0]["extensions"]["code"], "throttled");
}

async fn token_auth_payload_carries_the_hasura_preset(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura"]).await else { return };
    let id = app.add_user(ALICE, PW, true, &["ops"]).await;
    let v = token_auth(&app, ALICE, PW).await;
    let payload = &ok(&v, "tokenAuth")["payload"];
    assert_eq!(
        payload[NS],
        json!({"x-hasura-allowed-roles": ["user", "ops", "admin"], "x-hasura-default-role": "user",
               "x-hasura-user-id": id.to_string()})
    );
    let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["token_type", "exp", "iat", "jti", "user_id", "sub", "name", "email", NS, "username", "origIat"]);
}

async fn verify_token_returns_the_payload_or_graphql_jwt_errors(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--audience", "api"]).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (access, refresh) = signed_in(&app).await;
    for token in [&access, &refresh] {
        let v = gql(&app, VERIFY, json!({"token": token}), None).await;
        assert_eq!(claims_part(&ok(&v, "verifyToken")["payload"]), payload(token));
    }
    let verify_error = |token: Value| {
        let app = &app;
        async move { error_of(&gql(app, VERIFY, json!({"token": token}), None).await, "verifyToken") }
    };
    assert_eq!(verify_error(Value::Null).await, "Token is required");
    assert_eq!(verify_error(json!("garbage")).await, "Error decoding signature");
    let mut tampered = access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(verify_error(json!(tampered)).await, "Error decoding signature");
    let foreign = shared_user::jsonwebtoken::encode(
        &shared_user::jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("access", id),
        &shared_user::jsonwebtoken::EncodingKey::from_secret(b"another-key-another-key-another-key"),
    )
    .unwrap();
    assert_eq!(verify_error(json!(foreign)).await, "Error decoding signature");
    let mut expired = claims("access", id);
    expired["exp"] = json!(now() - 10);
    expired["aud"] = json!("api");
    assert_eq!(verify_error(json!(craft(&expired))).await, "Signature has expired");
    let mut wrong_audience = claims("access", id);
    wrong_audience["aud"] = json!("other");
    assert_eq!(verify_error(json!(craft(&wrong_audience))).await, "Invalid token");
    let mut hs512 = claims("access", id);
    hs512["aud"] = json!("api");
    assert_eq!(verify_error(json!(craft_with(Algorithm::HS512, &hs512))).await, "Invalid token");
    // A revoked refresh token no longer verifies.
    let r = app.post("/auth/token/blacklist/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(verify_error(json!(refresh)).await, "Invalid token");
}

async fn refresh_token_accepts_the_refresh_token_in_either_argument(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura"]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let (access, refresh) = signed_in(&app).await;
    for vars in [json!({"refreshToken": refresh}), json!({"token": refresh})] {
        let v = gql(&app, REFRESH, vars, None).await;
        let r = ok(&v, "refreshToken");
        let token = r["token"].as_str().unwrap();
        assert_eq!(claims_part(&r["payload"]), payload(token));
        assert!(r["payload"][NS].is_object(), "refreshed access tokens keep the preset");
        // No rotation: the same refresh token, with its own expiry.
        assert_eq!(r["refreshToken"], json!(refresh));
        assert_eq!(r["refreshExpiresIn"], payload(&refresh)["exp"]);
    }
    let refresh_error = |vars: Value| {
        let app = &app;
        async move { error_of(&gql(app, REFRESH, vars, None).await, "refreshToken") }
    };
    assert_eq!(refresh_error(json!({})).await, "Refresh token is required");
    assert_eq!(refresh_error(json!({"refreshToken": access})).await, "Invalid refresh token");
    assert_eq!(refresh_error(json!({"token": "garbage"})).await, "Invalid refresh token");
    let mut expired = claims("refresh", 1);
    expired["exp"] = json!(now() - 5);
    assert_eq!(refresh_error(json!({"refreshToken": craft(&expired)})).await, "Refresh token is expired");
    // A well-signed refresh token we never recorded.
    assert_eq!(refresh_error(json!({"refreshToken": craft(&claims("refresh", 1))})).await, "Invalid refresh token");
}

async fn refresh_token_rotates_and_refuses_disabled_users(backend: Backend) {
    let flags = ["--rotate-refresh-tokens", "true", "--refresh-reuse-grace", "0s"];
    let Some(app) = TestApp::new(backend, &flags).await else { return };
    let id = app.add_user(ALICE, PW, false, &[]).await;
    let (_, refresh) = signed_in(&app).await;
    let v = gql(&app, REFRESH, json!({"refreshToken": refresh}), None).await;
    let r = ok(&v, "refreshToken");
    let next = r["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    assert_eq!(r["refreshExpiresIn"], payload(&next)["exp"]);
    // The rotated-away token is refused (and, past the grace, revokes its family).
    let v = gql(&app, REFRESH, json!({"refreshToken": refresh}), None).await;
    assert_eq!(error_of(&v, "refreshToken"), "Invalid refresh token");
    let v = gql(&app, REFRESH, json!({"refreshToken": next}), None).await;
    assert_eq!(error_of(&v, "refreshToken"), "Invalid refresh token");
    // A disabled user cannot refresh.
    let (_, fresh) = signed_in(&app).await;
    app.set_active(id, false).await;
    let v = gql(&app, REFRESH, json!({"token": fresh}), None).await;
    assert_eq!(error_of(&v, "refreshToken"), "User is disabled");
}

async fn revoke_token_answers_the_time_and_refuses_a_second_time(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user(ALICE, PW, false, &[]).await;
    let (access, refresh) = signed_in(&app).await;
    let before = now();
    let v = gql(&app, REVOKE, json!({"refreshToken": refresh}), None).await;
    let revoked = ok(&v, "revokeToken")["revoked"].as_i64().unwrap();
    assert!((before..=now()).contains(&revoked));
    let v = gql(&app, REVOKE, json!({"refreshToken": refresh}), None).await;
    assert_eq!(error_of(&v, "revokeToken"), "Invalid refresh token");
    let v = gql(&app, REFRESH, json!({"refreshToken": refresh}), None).await;
    assert_eq!(error_of(&v, "refreshToken"), "Invalid refresh token");
    let v = gql(&app, REVOKE, json!({"refreshToken": access}), None).await;
    assert_eq!(error_of(&v, "revokeToken"), "Invalid refresh token");
    // The REST side agrees.
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn me_and_whoami_read_jwt_and_bearer_headers(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let id = app.add_user(ALICE, PW, false, &["billing:admin"]).await;
    let (access, refresh) = signed_in(&app).await;
    let query = format!("{{ me {{ {USER_FIELDS} }} whoami {{ id email }} }}");
    for scheme in ["JWT", "jwt", "Jwt", "Bearer", "bearer"] {
        let v = gql(&app, &query, json!({}), Some(&format!("{scheme} {access}"))).await;
        let me = ok(&v, "me");
        let stored = app.state.store.find_user(id).await.unwrap().unwrap();
        let rest: Value = serde_json::to_value(&stored).unwrap();
        assert_eq!(
            *me,
            json!({"id": id.to_string(), "email": ALICE, "firstName": "", "lastName": "",
                   "dateJoined": rest["date_joined"], "lastLogin": rest["last_login"], "isActive": true,
                   "isStaff": false, "isSuperuser": false,
                   "accessGroups": [{"name": "billing", "level": "admin"}]})
        );
        assert_eq!(v["data"]["whoami"], json!({"id": id.to_string(), "email": ALICE}));
    }
    let me_error = |auth: Option<String>| {
        let app = &app;
        async move { error_of(&gql(app, "{ me { id } }", json!({}), auth.as_deref()).await, "me") }
    };
    let denied = "You do not have permission to perform this action";
    assert_eq!(me_error(None).await, denied);
    assert_eq!(me_error(Some(format!("Token {access}"))).await, denied, "other schemes are anonymous");
    assert_eq!(me_error(Some(format!("JWT {access} extra"))).await, denied, "three parts: anonymous");
    assert_eq!(me_error(Some("JWT garbage".into())).await, "Error decoding signature");
    let mut expired = claims("access", id);
    expired["exp"] = json!(now() - 1);
    assert_eq!(me_error(Some(format!("JWT {}", craft(&expired)))).await, "Signature has expired");
    assert_eq!(me_error(Some(format!("JWT {refresh}"))).await, "Invalid token", "a refresh token is not access");
    app.set_active(id, false).await;
    assert_eq!(me_error(Some(format!("JWT {access}"))).await, "User is disabled");
    app.delete_user(id).await;
    assert_eq!(me_error(Some(format!("JWT {access}"))).await, denied);
}

async fn users_is_for_staff_only(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let alice = app.add_user(ALICE, PW, false, &[]).await;
    let boss = app.add_user("boss@example.com", PW, true, &["ops"]).await;
    let (access, _) = signed_in(&app).await;
    let v = gql(&app, "{ users { id email } }", json!({}), Some(&format!("JWT {access}"))).await;
    assert_eq!(error_of(&v, "users"), "You do not have permission to perform this action");
    let v = gql(&app, "{ users { id email } }", json!({}), None).await;
    assert_eq!(error_of(&v, "users"), "You do not have permission to perform this action");
    let v = token_auth(&app, "boss@example.com", PW).await;
    let staff = ok(&v, "tokenAuth")["token"].as_str().unwrap().to_owned();
    let v = gql(&app, "{ users { id email isStaff } }", json!({}), Some(&format!("Bearer {staff}"))).await;
    assert_eq!(
        *ok(&v, "users"),
        json!([{"id": alice.to_string(), "email": ALICE, "isStaff": false},
               {"id": boss.to_string(), "email": "boss@example.com", "isStaff": true}])
    );
}

const CREATE: &str = "mutation C($email: String!, $password: String!, $firstName: String) {
  createUser(email: $email, password: $password, firstName: $firstName) {
    user { id email firstName isStaff } token refreshToken
  }
}";

async fn create_user_refused(backend: Backend, flags: &[&str]) {
    let Some(app) = TestApp::new(backend, flags).await else { return };
    let v = gql(&app, CREATE, json!({"email": "new@example.com", "password": STRONG}), None).await;
    assert_eq!(error_of(&v, "createUser"), "You do not have permission to perform this action", "{flags:?}");
    assert!(app.state.store.list_users().await.unwrap().is_empty());
}

async fn create_user_is_refused_while_registration_is_off(backend: Backend) {
    create_user_refused(backend, &[]).await;
}

async fn create_user_is_refused_when_registration_is_admin_only(backend: Backend) {
    create_user_refused(backend, &["--allow-create-user", "admin"]).await;
}

async fn open_create_user_validates_and_signs_the_new_user_in(backend: Backend) {
    let create = CREATE;
    let Some(app) = TestApp::new(backend, &["--allow-create-user", "open"]).await else { return };
    let v = gql(&app, create, json!({"email": " New@Example.com", "password": STRONG, "firstName": "Neu"}), None).await;
    let c = ok(&v, "createUser");
    let stored = app.state.store.find_by_email("new@example.com").await.unwrap().expect("created");
    assert_eq!(
        c["user"],
        json!({"id": stored.user.id.to_string(), "email": "new@example.com", "firstName": "Neu",
                                 "isStaff": false})
    );
    assert_eq!(payload(c["token"].as_str().unwrap())["user_id"], json!(stored.user.id));
    assert_eq!(payload(c["refreshToken"].as_str().unwrap())["token_type"], "refresh");
    let v = gql(&app, create, json!({"email": "new@example.com", "password": STRONG}), None).await;
    assert_eq!(error_of(&v, "createUser"), "This email already exists.");
    assert!(v["errors"][0].get("extensions").is_none(), "{v}");
    let v = gql(&app, create, json!({"email": "weak@example.com", "password": "short"}), None).await;
    assert_eq!(error_of(&v, "createUser"), "This password is too short. It must contain at least 8 characters.");
    assert_eq!(
        v["errors"][0]["extensions"],
        json!({"password": ["This password is too short. It must contain at least 8 characters."]})
    );
    let v = gql(&app, create, json!({"email": "nope", "password": ""}), None).await;
    assert_eq!(error_of(&v, "createUser"), "password: This field may not be blank. Enter a valid email address.");
    assert_eq!(app.state.store.list_users().await.unwrap().len(), 1);
}

/// The introspection query graphql-js (and so Hasura's remote schema) sends.
const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}";

fn type_of<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["types"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no type {name}"))
}

fn field_names(t: &Value) -> Vec<&str> {
    t["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect()
}

async fn introspection_describes_the_graphql_jwt_schema(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let v = gql(&app, INTROSPECTION, json!({}), None).await;
    let schema = &ok(&v, "__schema");
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["mutationType"]["name"], "Mutation");
    assert_eq!(schema["subscriptionType"], Value::Null);
    assert_eq!(field_names(type_of(schema, "Query")), ["me", "whoami", "users", "currentUser", "sessions"]);
    assert_eq!(
        field_names(type_of(schema, "Mutation")),
        [
            "tokenAuth",
            "tokenAuthMfa",
            "verifyToken",
            "refreshToken",
            "revokeToken",
            "createUser",
            "userCreate",
            "logoutAll"
        ]
    );
    assert_eq!(
        field_names(type_of(schema, "ObtainJSONWebToken")),
        ["token", "payload", "refreshExpiresIn", "refreshToken", "user"]
    );
    assert_eq!(type_of(schema, "GenericScalar")["kind"], "SCALAR");
    let user = field_names(type_of(schema, "UserType"));
    assert_eq!(
        user,
        [
            "id",
            "email",
            "firstName",
            "lastName",
            "dateJoined",
            "lastLogin",
            "isActive",
            "isStaff",
            "isSuperuser",
            "accessGroups",
            "username"
        ]
    );
    let token_auth = type_of(schema, "Mutation")["fields"][0].clone();
    let args: Vec<(&str, &str)> = token_auth["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["type"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(args, [("email", "SCALAR"), ("username", "SCALAR"), ("password", "NON_NULL")]);
}

async fn transport_errors_stay_json(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    let r = app.get_with("/graphql", &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.content_type(), "application/json");
    let r = app.post("/graphql", "not json").await;
    assert_eq!((r.status, r.content_type()), (StatusCode::BAD_REQUEST, "application/json"), "{}", r.text);
    assert!(r.json()["errors"][0]["message"].is_string());
    // A missing required argument and an unknown field are GraphQL errors, not panics.
    let v = gql(&app, "mutation { tokenAuth(email: \"a@b.c\") { token } }", json!({}), None).await;
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("password"), "{v}");
    let v = gql(&app, "{ me { password } }", json!({}), None).await;
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("password"), "{v}");
    let huge = format!(r#"{{"query":"{{ me {{ id }} }}","pad":"{}"}}"#, "x".repeat(shared_user::http::MAX_BODY));
    let r = app.post("/graphql", &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
}

both_backends!(
    token_auth_returns_token_payload_refresh_and_user,
    token_auth_refuses_bad_credentials_with_one_message,
    token_auth_is_throttled,
    token_auth_payload_carries_the_hasura_preset,
    verify_token_returns_the_payload_or_graphql_jwt_errors,
    refresh_token_accepts_the_refresh_token_in_either_argument,
    refresh_token_rotates_and_refuses_disabled_users,
    revoke_token_answers_the_time_and_refuses_a_second_time,
    me_and_whoami_read_jwt_and_bearer_headers,
    users_is_for_staff_only,
    create_user_is_refused_while_registration_is_off,
    create_user_is_refused_when_registration_is_admin_only,
    open_create_user_validates_and_signs_the_new_user_in,
    introspection_describes_the_graphql_jwt_schema,
    transport_errors_stay_json,
);
