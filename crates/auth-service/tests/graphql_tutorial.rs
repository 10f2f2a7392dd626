//! The GraphQL documents of the Graphene / graphql-jwt / Hasura tutorials (issue 17), the
//! role rule (`USERS_READER_GROUP`, Hasura default role, `profile { role }`), Hasura's `admin`
//! role kept for staff, and the per-operation limits of `/graphql` tested as an attacker sends
//! them (issue 12, items 7 and 11).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::Backend;

const STRONG: &str = "tangerine-voyage-42";
const NS: &str = "https://hasura.io/jwt/claims";

/// The tutorial service: open registration, `manager` reads users, Hasura claims.
fn tutorial(s: &mut auth_service::Settings) {
    s.allow_create_user = auth_service::settings::CreateUserPolicy::Open;
    s.users_reader_group = Some("manager".into());
    s.claims_preset = auth_service::settings::ClaimsPreset::Hasura;
}

async fn gql(app: &TestApp, query: &str, authorization: Option<&str>) -> Value {
    let body = json!({ "query": query }).to_string();
    let headers: Vec<(&str, &str)> = authorization.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let r = app.send(Method::POST, "/graphql", Some(&body), &headers).await;
    assert_eq!((r.status, r.content_type()), (StatusCode::OK, "application/json"), "{}", r.text);
    r.json()
}

#[track_caller]
fn data<'a>(v: &'a Value, field: &str) -> &'a Value {
    assert!(v.get("errors").is_none(), "{v}");
    &v["data"][field]
}

#[track_caller]
fn only_error(v: &Value) -> String {
    let errors = v["errors"].as_array().unwrap_or_else(|| panic!("no errors: {v}"));
    assert_eq!(errors.len(), 1, "{v}");
    errors[0]["message"].as_str().unwrap().to_owned()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

async fn the_tutorial_documents_validate_against_the_schema(backend: Backend) {
    let Some(app) = TestApp::new(backend, tutorial).await else { return };
    // As written in the tutorials: `username` is a short name there, the email here, so the
    // two disagree and the answer is one clear error (not a schema validation failure).
    let create = format!(
        r#"mutation {{ createUser(username: "ann", password: "{STRONG}", email: "ann@test.com") {{ refreshToken token user {{ username }} profile {{ role }} }} }}"#
    );
    let v = gql(&app, &create, None).await;
    assert_eq!(only_error(&v), "username and email must be the same: the username is the email");
    assert_eq!(v["data"]["createUser"], Value::Null, "{v}");
    let user_create = format!(
        r#"mutation {{ userCreate(username: "bob", password: "{STRONG}", email: "bob@test.com") {{ user {{ id username email }} }} }}"#
    );
    let v = gql(&app, &user_create, None).await;
    assert_eq!(only_error(&v), "username and email must be the same: the username is the email");
    assert!(app.state.store.list_users().await.unwrap().is_empty(), "nothing created");

    // With the username being the email (or only one of them), the same documents succeed.
    let create = create.replace(r#"username: "ann""#, r#"username: "ann@test.com""#);
    let v = gql(&app, &create, None).await;
    let c = data(&v, "createUser");
    assert_eq!(keys(c), ["refreshToken", "token", "user", "profile"]);
    assert_eq!(c["user"], json!({"username": "ann@test.com"}));
    assert_eq!(c["profile"], json!({"role": "user"}), "a new user is in no group");
    assert_eq!(payload(c["token"].as_str().unwrap())["token_type"], "access");
    let user_create = user_create.replace(r#"username: "bob", "#, "");
    let v = gql(&app, &user_create, None).await;
    let bob = &data(&v, "userCreate")["user"];
    assert_eq!(keys(bob), ["id", "username", "email"]);
    assert_eq!((&bob["username"], &bob["email"]), (&json!("bob@test.com"), &json!("bob@test.com")));
    let v = gql(&app, r#"mutation { userCreate(username: "cy@test.com", password: "x") { user { id } } }"#, None).await;
    assert_eq!(only_error(&v), "This password is too short. It must contain at least 8 characters.");
    let v = gql(&app, &format!(r#"mutation {{ userCreate(password: "{STRONG}") {{ user {{ id }} }} }}"#), None).await;
    assert_eq!(only_error(&v), "email: This field is required.");

    let token = c["token"].as_str().unwrap();
    let v = gql(&app, "query { currentUser { id username email } }", Some(&format!("JWT {token}"))).await;
    let me = data(&v, "currentUser");
    assert_eq!(keys(me), ["id", "username", "email"]);
    assert_eq!((&me["username"], &me["email"]), (&json!("ann@test.com"), &json!("ann@test.com")));
    let v = gql(&app, "query { currentUser { id } }", None).await;
    assert_eq!(only_error(&v), "You do not have permission to perform this action");
}

async fn the_whole_tutorial_flow_runs(backend: Backend) {
    let Some(app) = TestApp::new(backend, |s: &mut auth_service::Settings| {
        tutorial(s);
        s.rotate_refresh_tokens = true;
    })
    .await
    else {
        return;
    };
    let create = format!(
        r#"mutation {{ createUser(username: "ann@test.com", password: "{STRONG}", email: "ann@test.com") {{ user {{ id username }} }} }}"#
    );
    let id = data(&gql(&app, &create, None).await, "createUser")["user"]["id"].clone();

    let login = format!(
        r#"mutation {{ tokenAuth(username: "ann@test.com", password: "{STRONG}") {{ token refreshToken payload }} }}"#
    );
    let v = gql(&app, &login, None).await;
    let t = data(&v, "tokenAuth");
    let payload = &t["payload"];
    assert_eq!(payload["username"], "ann@test.com", "graphql-jwt's payload.username");
    let orig_iat = payload["origIat"].as_i64().expect("payload.origIat");
    assert!((orig_iat - payload["iat"].as_i64().unwrap()).abs() <= 1, "signed in now: {payload}");
    assert!(payload["exp"].is_i64() && payload[NS].is_object(), "today's claims stay: {payload}");
    let (token, refresh) = (t["token"].as_str().unwrap(), t["refreshToken"].as_str().unwrap());

    let v = gql(&app, "query { whoami { email } }", Some(&format!("JWT {token}"))).await;
    assert_eq!(data(&v, "whoami"), &json!({"email": "ann@test.com"}));

    // Refresh in a later second than the sign-in, so a token's own `iat` is not the sign-in.
    let to_next_second = 1000 - u64::from(chrono::Utc::now().timestamp_subsec_millis()).min(999);
    tokio::time::sleep(std::time::Duration::from_millis(to_next_second + 20)).await;
    let refresh_doc =
        format!(r#"mutation {{ refreshToken(refreshToken: "{refresh}") {{ token refreshToken payload }} }}"#);
    let v = gql(&app, &refresh_doc, None).await;
    let r = data(&v, "refreshToken");
    assert_eq!(r["payload"]["username"], "ann@test.com");
    assert_eq!(r["payload"]["origIat"], json!(orig_iat), "origIat is kept across refreshes");
    assert!(r["payload"]["iat"].as_i64().unwrap() > orig_iat, "refreshed after the sign-in: {}", r["payload"]);
    let (new_token, new_refresh) = (r["token"].as_str().unwrap(), r["refreshToken"].as_str().unwrap());
    assert_ne!(new_refresh, refresh, "rotated");
    for verified in [new_token, new_refresh] {
        let v = gql(&app, &format!(r#"mutation {{ verifyToken(token: "{verified}") {{ payload }} }}"#), None).await;
        let p = &data(&v, "verifyToken")["payload"];
        assert_eq!(p["username"], "ann@test.com");
        assert_eq!(p["user_id"].to_string(), id.as_str().unwrap(), "{p}");
        assert_eq!(p["origIat"], json!(orig_iat), "the original sign-in, for the refreshed access token too: {p}");
    }
    // The single-token style argument, with the rotated token: still the same session.
    let v = gql(&app, &format!(r#"mutation {{ refreshToken(token: "{new_refresh}") {{ payload }} }}"#), None).await;
    assert_eq!(data(&v, "refreshToken")["payload"]["origIat"], json!(orig_iat));
}

async fn the_reader_group_lists_users_and_is_the_default_role(backend: Backend) {
    let Some(app) = TestApp::new(backend, tutorial).await else { return };
    let manager = app.add_user("boss@test.com", STRONG, false, &["manager", "billing"]).await;
    app.add_user("ann@test.com", STRONG, false, &["billing"]).await;
    let (_, boss) = app.login("boss@test.com", STRONG).await;
    let (_, ann) = app.login("ann@test.com", STRONG).await;

    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {boss}"))).await;
    assert_eq!(data(&v, "users"), &json!([{"email": "boss@test.com"}, {"email": "ann@test.com"}]));
    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {ann}"))).await;
    assert_eq!(only_error(&v), "You do not have permission to perform this action");
    assert_eq!(v["data"]["users"], Value::Null);

    // The same rule picks the Hasura default role.
    let claims = payload(&boss);
    assert_eq!(
        claims[NS],
        json!({"x-hasura-allowed-roles": ["manager", "user", "billing"], "x-hasura-default-role": "manager",
               "x-hasura-user-id": manager.to_string()})
    );
    assert_eq!(payload(&ann)[NS]["x-hasura-default-role"], "user");
    assert_eq!(payload(&ann)[NS]["x-hasura-allowed-roles"], json!(["user", "billing"]));
    // Staff read users without being in the group.
    app.add_user("staff@test.com", STRONG, true, &[]).await;
    let (_, staff) = app.login("staff@test.com", STRONG).await;
    let v = gql(&app, "query { users { email } }", Some(&format!("Bearer {staff}"))).await;
    assert_eq!(data(&v, "users").as_array().unwrap().len(), 3);
}

/// `createUser { profile { role } }` follows the role rule: a new user, in no group yet, has the
/// configured default role. `createUser` cannot put a user in a group, so the reader-group
/// branch is followed through the rest of the flow: an admin gives the created user the
/// `manager` group, and the same user signing in then has the `manager` role (the Hasura
/// default role of its token) and may list users.
async fn a_created_user_put_in_the_reader_group_gets_its_role(backend: Backend) {
    let Some(app) = TestApp::new(backend, |s: &mut auth_service::Settings| {
        tutorial(s);
        s.hasura_default_role = "member".into();
    })
    .await
    else {
        return;
    };
    let create = format!(
        r#"mutation {{ createUser(username: "ann@test.com", password: "{STRONG}", email: "ann@test.com") {{ token user {{ id }} profile {{ role }} }} }}"#
    );
    let v = gql(&app, &create, None).await;
    let c = data(&v, "createUser");
    assert_eq!(c["profile"], json!({"role": "member"}), "the configured default role: {c}");
    assert_eq!(payload(c["token"].as_str().unwrap())[NS]["x-hasura-default-role"], "member", "the same rule");
    let id = c["user"]["id"].as_str().unwrap().to_owned();
    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {}", c["token"].as_str().unwrap()))).await;
    assert_eq!(only_error(&v), "You do not have permission to perform this action");

    // The reader group is a superuser's to give.
    let hash = app.state.hasher.hash(STRONG.to_owned()).await.unwrap();
    let root = auth_service::store::NewUser {
        email: "root@test.com".into(),
        password_hash: hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    app.state.store.create_user(root).await.unwrap();
    let (_, root) = app.login("root@test.com", STRONG).await;
    let patch = json!({"access_groups": ["manager"]}).to_string();
    let auth = format!("Bearer {root}");
    let r =
        app.send(Method::PATCH, &format!("/auth/admin/users/{id}/"), Some(&patch), &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let login = format!(
        r#"mutation {{ tokenAuth(username: "ann@test.com", password: "{STRONG}") {{ token payload user {{ accessGroups {{ name }} }} }} }}"#
    );
    let v = gql(&app, &login, None).await;
    let t = data(&v, "tokenAuth");
    assert_eq!(t["user"]["accessGroups"], json!([{"name": "manager"}]));
    assert_eq!(t["payload"][NS]["x-hasura-default-role"], "manager", "the reader group is the role: {}", t["payload"]);
    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {}", t["token"].as_str().unwrap()))).await;
    assert_eq!(data(&v, "users"), &json!([{"email": "ann@test.com"}, {"email": "root@test.com"}]));
}

async fn without_a_reader_group_only_staff_list_users(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura"]).await else { return };
    app.add_user("boss@test.com", STRONG, false, &["manager"]).await;
    let (_, boss) = app.login("boss@test.com", STRONG).await;
    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {boss}"))).await;
    assert_eq!(only_error(&v), "You do not have permission to perform this action");
    assert_eq!(payload(&boss)[NS]["x-hasura-default-role"], "user");
}

async fn a_group_named_admin_does_not_give_hasuras_admin_role(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura"]).await else { return };
    app.add_user("mallory@test.com", STRONG, false, &["admin", "editor"]).await;
    app.add_user("staff@test.com", STRONG, true, &["admin"]).await;
    let (refresh, mallory) = app.login("mallory@test.com", STRONG).await;
    assert_eq!(payload(&mallory)[NS]["x-hasura-allowed-roles"], json!(["user", "editor"]));
    assert_eq!(payload(&mallory)[NS]["x-hasura-default-role"], "user");
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(payload(r.json()["access"].as_str().unwrap())[NS]["x-hasura-allowed-roles"], json!(["user", "editor"]));
    let v = gql(&app, "query { users { email } }", Some(&format!("JWT {mallory}"))).await;
    assert_eq!(only_error(&v), "You do not have permission to perform this action");
    let (_, staff) = app.login("staff@test.com", STRONG).await;
    assert_eq!(payload(&staff)[NS]["x-hasura-allowed-roles"], json!(["user", "admin"]));
}

async fn admin_is_refused_as_default_role_or_reader_group(backend: Backend) {
    let Some(db) = shared_user::testing::TestDb::new(backend, "admin role settings", auth_service::MIGRATIONS).await
    else {
        return;
    };
    let bad = auth_service::AppState::build(settings(&["--hasura-default-role", "admin"]), db.db.clone()).await;
    assert!(bad.unwrap_err().to_string().starts_with("HASURA_DEFAULT_ROLE must not be `admin`"));
    let bad = auth_service::AppState::build(settings(&["--users-reader-group", "admin"]), db.db.clone()).await;
    assert!(bad.unwrap_err().to_string().starts_with("USERS_READER_GROUP must not be `admin`"));
}

async fn the_tutorial_claims_preset_adds_username_and_sub_claims(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--claims-preset", "hasura-tutorial"]).await else { return };
    let id = app.add_user("ann@test.com", STRONG, false, &[]).await;
    let (_, access) = app.login("ann@test.com", STRONG).await;
    let claims = payload(&access);
    assert_eq!(
        keys(&claims),
        ["token_type", "exp", "iat", "jti", "user_id", "sub", "name", "email", "username", "sub_name", "sub_email", NS]
    );
    assert_eq!(claims["username"], "ann@test.com");
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["sub_name"], "ann@test.com", "no names: the email is the display name");
    assert_eq!(claims["sub_email"], "ann@test.com");
    assert_eq!(claims[NS]["x-hasura-user-id"], id.to_string());
}

/// `n` aliased copies of `field` in one operation.
fn aliased(kind: &str, n: usize, field: &str) -> String {
    let body: String = (0..n).map(|i| format!("a{i}: {field} ")).collect();
    format!("{kind} {{ {body}}}")
}

async fn many_aliased_root_fields_are_refused_before_any_work(backend: Backend) {
    let Some(app) = TestApp::new(backend, tutorial).await else { return };
    app.add_user("ann@test.com", STRONG, false, &[]).await;
    let (refresh, _) = app.login("ann@test.com", STRONG).await;

    // The report's request: 1,700 aliased verifyToken in about 62 KB.
    let field = "verifyToken(token:$t){payload}";
    let query = aliased("mutation($t:String)", 1_700, field);
    assert!(query.len() > 55_000 && query.len() < shared_user::http::MAX_BODY - 100, "{}", query.len());
    let v = gql(&app, &query, None).await;
    assert_eq!(only_error(&v), "Too many root fields in one operation: 1700 (at most 10).");
    assert_eq!(v["data"], Value::Null, "nothing ran: {}", &v.to_string()[..200]);

    // Proof that nothing runs: aliased wrong-password logins count no failure (five would lock
    // the account from this address), aliased signups create nobody, aliased revocations
    // revoke nothing.
    let guesses = aliased("mutation", 400, r#"tokenAuth(email: "ann@test.com", password: "guess") { token }"#);
    assert!(only_error(&gql(&app, &guesses, None).await).starts_with("Too many root fields"));
    let signups: String = (0..200)
        .map(|i| format!(r#"s{i}: createUser(email: "u{i}@test.com", password: "{STRONG}") {{ token }} "#))
        .collect();
    assert!(
        only_error(&gql(&app, &format!("mutation {{ {signups}}}"), None).await).starts_with("Too many root fields")
    );
    let revokes = aliased("mutation", 11, &format!(r#"revokeToken(refreshToken: "{refresh}") {{ revoked }}"#));
    assert!(only_error(&gql(&app, &revokes, None).await).starts_with("Too many root fields"));
    assert_eq!(app.state.store.list_users().await.unwrap().len(), 1, "no signup ran");
    app.login("ann@test.com", STRONG).await;
    let r = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "no revocation ran: {}", r.text);

    // Fragments and inline fragments count too; ten root fields are fine.
    let spread = format!(
        "query {{ ...F ... on Query {{ b: me {{ id }} }} }} fragment F on Query {{ {} }}",
        (0..10).map(|i| format!("f{i}: me {{ id }} ")).collect::<String>()
    );
    assert!(only_error(&gql(&app, &spread, None).await).starts_with("Too many root fields in one operation: 11"));
    let ten = aliased("mutation", 10, r#"verifyToken(token:"x"){payload}"#);
    let v = gql(&app, &ten, None).await;
    assert_eq!(v["errors"].as_array().unwrap().len(), 10, "ten run (each refuses the bad token)");
    assert!(v["errors"].as_array().unwrap().iter().all(|e| e["message"] == "Error decoding signature"));
}

async fn overly_complex_operations_are_refused(backend: Backend) {
    let Some(app) = TestApp::new(backend, &[]).await else { return };
    app.add_user("ann@test.com", STRONG, true, &[]).await;
    let (_, access) = app.login("ann@test.com", STRONG).await;
    // One root field, but hundreds of aliased sub-fields.
    let wide: String = (0..600).map(|i| format!("e{i}: email ")).collect();
    let v = gql(&app, &format!("query {{ users {{ {wide}}} }}"), Some(&format!("JWT {access}"))).await;
    assert_eq!(only_error(&v), "Query is too complex.");
    assert_eq!(v["data"], Value::Null);
    let v = gql(&app, "query { users { email accessGroups { name level } } }", Some(&format!("JWT {access}"))).await;
    assert_eq!(data(&v, "users").as_array().unwrap().len(), 1);
}

async fn the_limits_are_settings(backend: Backend) {
    let Some(app) = TestApp::new(backend, |s: &mut auth_service::Settings| {
        s.graphql_max_root_fields = 2;
        s.graphql_max_complexity = 3;
    })
    .await
    else {
        return;
    };
    let v = gql(&app, r#"mutation { a: verifyToken(token: "x") { payload } b: verifyToken(token: "y") { payload } c: verifyToken(token: "z") { payload } }"#, None).await;
    assert_eq!(only_error(&v), "Too many root fields in one operation: 3 (at most 2).");
    let v = gql(&app, "query { me { id email firstName lastName } }", None).await;
    assert_eq!(only_error(&v), "Query is too complex.");
}

both_backends!(
    the_tutorial_documents_validate_against_the_schema,
    the_whole_tutorial_flow_runs,
    the_reader_group_lists_users_and_is_the_default_role,
    a_created_user_put_in_the_reader_group_gets_its_role,
    without_a_reader_group_only_staff_list_users,
    a_group_named_admin_does_not_give_hasuras_admin_role,
    admin_is_refused_as_default_role_or_reader_group,
    the_tutorial_claims_preset_adds_username_and_sub_claims,
    many_aliased_root_fields_are_refused_before_any_work,
    overly_complex_operations_are_refused,
    the_limits_are_settings,
);
