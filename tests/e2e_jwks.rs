//! Client local mode against an auth-service with asymmetric keys: verification with the
//! cached JWKS, a rate-limited refetch for unknown kids, and key rotation without rejections.

mod common;

use common::{Options, Pair, token_not_valid};
use serde_json::json;
use shared_user::both_backends;
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::testing::Backend;

const JWKS: &str = "/.well-known/jwks.json";

async fn pair(backend: Backend, alg: &'static str) -> Option<Pair> {
    Pair::start(
        backend,
        Options::new(client_service::VerifyMode::Local).auth(|s| s.algorithm = alg.parse().expect("algorithm")),
    )
    .await
}

async fn local_mode_verifies_with_the_cached_jwks(backend: Backend) {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let Some(p) = pair(backend, alg).await else { return };
        p.add_user("alice@example.com", &[]).await;
        let (_, access) = p.login("alice@example.com").await;
        p.counter.reset();
        for _ in 0..10 {
            p.get("/api/test/", &access).await.expect_json(200, json!("success"));
        }
        assert_eq!(p.counter.get(JWKS), 1, "{alg}: one JWKS fetch, then none: {:?}", p.counter.snapshot());
        assert_eq!(p.counter.total(), 1, "{alg}: no other call per request: {:?}", p.counter.snapshot());
        p.finish().await;
    }
}

async fn rotated_keys_are_picked_up_on_the_first_unknown_kid(backend: Backend) {
    let Some(p) = pair(backend, "EdDSA").await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, old_access) = p.login("alice@example.com").await;
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    // The admin stages and promotes a new key without waiting for the client's cache.
    for _ in 0..2 {
        common::rotate_auth_key(&p, Algorithm::EdDSA).await;
    }
    common::reload_auth_keys(&p).await;
    let (_, new_access) = p.login_direct("alice@example.com").await;
    p.counter.reset();
    p.get("/api/test/", &new_access).await.expect_json(200, json!("success"));
    assert_eq!(p.counter.get(JWKS), 1, "one refetch for the new kid: {:?}", p.counter.snapshot());
    p.get("/api/test/", &old_access).await.expect_json(200, json!("success"));
    assert_eq!(p.counter.get(JWKS), 1, "the old key is still in the set");
    p.finish().await;
}

async fn unknown_kids_are_refused_and_refetched_at_most_once(backend: Backend) {
    let Some(p) = pair(backend, "EdDSA").await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let (_, access) = p.login("alice@example.com").await;
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": id});
    let pem = auth_service::tokens::generate_private_pem(Algorithm::EdDSA).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("not-ours".into());
    let forged =
        shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    p.counter.reset();
    for _ in 0..5 {
        p.get("/api/test/", &forged).await.expect_client_401(token_not_valid());
    }
    assert!(p.counter.get(JWKS) <= 1, "refetches are rate limited: {:?}", p.counter.snapshot());
    p.finish().await;
}

async fn hmac_tokens_signed_with_the_public_key_are_refused(backend: Backend) {
    let Some(p) = pair(backend, "RS256").await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let set: serde_json::Value =
        p.http.get(format!("{}{JWKS}", p.auth_url)).send().await.unwrap().json().await.unwrap();
    let kid = set["keys"][0]["kid"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": id});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    let secret = serde_json::to_vec(&set["keys"][0]).unwrap();
    let confused = shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
    p.get("/api/test/", &confused).await.expect_client_401(token_not_valid());
    p.finish().await;
}

/// The auth-service says how long its JWKS may be cached; the client keeps it that long (not
/// its own longer `JWKS_CACHE_TTL`), then asks again with the `ETag` and keeps the set on a 304.
async fn the_client_keeps_the_jwks_for_its_max_age_then_revalidates_it(backend: Backend) {
    let options = Options::new(client_service::VerifyMode::Local)
        .auth(|s| {
            s.algorithm = Algorithm::EdDSA;
            s.jwks_max_age = std::time::Duration::from_secs(1);
        })
        .configure(|c| c.jwks_min_refetch(std::time::Duration::from_millis(200)));
    let Some(p) = Pair::start(backend, options).await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, access) = p.login("alice@example.com").await;
    p.counter.reset();
    for _ in 0..3 {
        p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    }
    assert_eq!(p.counter.get(JWKS), 1, "fetched once, then cached: {:?}", p.counter.snapshot());
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    for _ in 0..3 {
        p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    }
    assert_eq!(p.counter.get(JWKS), 2, "asked again once max-age=1 passed: {:?}", p.counter.snapshot());
    let metrics = p.get_with("/metrics", &[]).await.text;
    assert!(
        metrics.lines().any(|l| l.starts_with(r#"gatehouse_jwks_fetches_total{outcome="not_modified"}"#)),
        "the unchanged set came back as a 304: {metrics}"
    );
    p.finish().await;
}

/// Changing the shared secret on the client's side: the new secret with the old one as
/// `SIGNING_KEY_PREVIOUS` accepts the auth-service's tokens of the old secret; the new secret
/// alone refuses them.
async fn a_client_with_signing_key_previous_accepts_tokens_of_the_earlier_secret(backend: Backend) {
    const NEW: &str = "the-new-signing-secret-0123456789abcdef";
    let rotating = Options::new(client_service::VerifyMode::Local)
        .configure(|c| c.local_hmac(NEW).previous_hmac_keys([common::KEY]));
    let Some(p) = Pair::start(backend, rotating).await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, access) = p.login("alice@example.com").await;
    p.counter.reset();
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    assert_eq!(p.counter.get("/auth/token/verify/"), 0, "verified locally: {:?}", p.counter.snapshot());
    p.finish().await;

    let new_only = Options::new(client_service::VerifyMode::Local).configure(|c| c.local_hmac(NEW));
    let Some(p) = Pair::start(backend, new_only).await else { return };
    p.add_user("alice@example.com", &[]).await;
    let (_, access) = p.login("alice@example.com").await;
    p.get("/api/test/", &access).await.expect_client_401(token_not_valid());
    p.finish().await;
}

/// With `ISSUER` set to the auth-service's URL, a verifier we did not write (`jwt-authorizer`'s
/// `from_oidc`) and our client, each given that URL alone, find the keys through discovery and
/// accept the auth-service's tokens; a token of another key is refused by both.
async fn verifiers_given_only_the_issuer_url_find_the_keys_through_discovery(backend: Backend) {
    let options = Options::new(client_service::VerifyMode::Local).auth(|s| s.algorithm = Algorithm::EdDSA).discovery();
    let Some(p) = Pair::start(backend, options).await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let issuer = p.auth_url.clone();
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let r = p.http.get(format!("{issuer}{path}")).send().await.expect("discovery");
        assert_eq!(r.status(), 200, "{path}");
        let doc: serde_json::Value = r.json().await.expect("JSON");
        assert_eq!(doc["issuer"], json!(issuer), "{path}");
        assert_eq!(doc["jwks_uri"], json!(format!("{issuer}{JWKS}")), "{path}");
        assert_eq!(doc["token_endpoint"], json!(format!("{issuer}/auth/token/")), "{path}");
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["EdDSA"]), "{path}");
    }

    let (_, access) = p.login_direct("alice@example.com").await;
    let foreign = jwt_authorizer::JwtAuthorizer::<serde_json::Value>::from_oidc(&issuer)
        .validation(jwt_authorizer::Validation::new().iss(&[issuer.as_str()]))
        .build()
        .await
        .expect("jwt-authorizer reads the discovery document");
    let checked = foreign.check_auth(&access).await.expect("jwt-authorizer accepts our token");
    assert_eq!(checked.claims["user_id"], json!(id));
    assert_eq!(checked.claims["iss"], json!(issuer));

    p.counter.reset();
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    p.get("/api/test/", &access).await.expect_json(200, json!("success"));
    let calls = p.counter.snapshot();
    assert_eq!(p.counter.get("/.well-known/openid-configuration"), 1, "{calls:?}");
    assert_eq!(p.counter.get(JWKS), 1, "{calls:?}");
    assert_eq!(p.counter.get("/auth/user/"), 1, "the mirror's first copy: {calls:?}");
    assert_eq!(p.counter.total(), 3, "nothing else, and nothing per request: {calls:?}");

    // A token in the same shape, signed by a key that is not published: refused by both.
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 60, "iat": now, "jti": "x", "user_id": id, "iss": issuer});
    let pem = auth_service::tokens::generate_private_pem(Algorithm::EdDSA).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = checked.header.kid.clone();
    let forged =
        shared_user::jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
            .unwrap();
    assert!(foreign.check_auth(&forged).await.is_err(), "jwt-authorizer refuses a token of another key");
    p.get("/api/test/", &forged).await.expect_client_401(token_not_valid());
    p.finish().await;
}

/// Two replicas rotate their keys by themselves (`KEY_ROTATION_INTERVAL` 4 s, so a 3 s
/// publication lead: 1 s reload + 1 s `JWKS_MAX_AGE` + 1 s) while a local-mode client checks a
/// steady stream of fresh and older tokens from both: through two rotations no valid token is
/// refused, a key is in the JWKS before any token carries it, and a retired key leaves the JWKS
/// only once every token it signed has expired (refresh lifetime 6 s).
async fn two_replicas_rotate_by_themselves_without_a_refused_token(backend: Backend) {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, Instant};
    let options = Options::new(client_service::VerifyMode::Local)
        .auth(|s| {
            s.algorithm = Algorithm::EdDSA;
            s.key_rotation_interval = Duration::from_secs(4);
            s.keys_reload_interval = Duration::from_secs(1);
            s.jwks_max_age = Duration::from_secs(1);
            s.access_token_lifetime = Duration::from_secs(5);
            s.refresh_token_lifetime = Duration::from_secs(6);
        })
        .configure(|c| c.jwks_min_refetch(Duration::from_millis(200)));
    let Some(p) = Pair::start(backend, options).await else { return };
    let id = p.add_user("alice@example.com", &[]).await;
    let kek = auth_service::keys::KeyEncryptionKey::parse(common::KEK).expect("KEK");
    let replica_b = auth_service::AppState::build((*p.auth.settings).clone(), p.auth_db.db.clone()).await.unwrap();
    let mut watches = Vec::new();
    for state in [&p.auth, &replica_b] {
        let policy = auth_service::keys::rotation::Policy::of(&state.settings);
        let watch = auth_service::keys::watch::KeyWatch::new(
            state.store.clone(),
            state.keys.clone(),
            Some(kek.clone()),
            state.settings.keys_reload_interval,
        );
        watches.push(watch.rotating(policy).spawn());
    }

    let started = Instant::now();
    // Every token minted, with its kid and expiry; the kids each JWKS answer held.
    let mut tokens: Vec<(String, String, i64)> = Vec::new();
    let mut first_seen_in_jwks: BTreeMap<String, Instant> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut first_kid_gone_at = None;
    let kid_of = |t: &str| shared_user::jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    // Until two rotations are done and the first key is gone (about 16 s; at most 45 s on a
    // busy machine, where the one-second checks come late).
    let done = |tokens: &Vec<(String, String, i64)>, gone: bool| {
        gone && tokens.iter().map(|(_, kid, _)| kid).collect::<BTreeSet<_>>().len() >= 3
    };
    while !done(&tokens, first_kid_gone_at.is_some()) && started.elapsed() < Duration::from_secs(45) {
        let now = chrono::Utc::now().timestamp();
        for state in [&p.auth, &replica_b] {
            let minted = state.keys.mint(shared_user::TokenType::Access, id).unwrap();
            let kid = kid_of(&minted.token);
            tokens.push((minted.token, kid, minted.exp));
        }
        let jwks: serde_json::Value =
            p.http.get(format!("{}{JWKS}", p.auth_url)).send().await.unwrap().json().await.unwrap();
        let last_jwks: BTreeSet<String> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        for kid in &last_jwks {
            first_seen_in_jwks.entry(kid.clone()).or_insert_with(Instant::now);
        }
        // Every unexpired token's key is published; every unexpired token is accepted (the two
        // newest and a sample of older ones, so the loop stays steady).
        let live: Vec<&(String, String, i64)> = tokens.iter().filter(|(_, _, exp)| *exp > now + 1).collect();
        for (_, kid, _) in &live {
            assert!(last_jwks.contains(kid), "a key with live tokens is unpublished: {kid} not in {last_jwks:?}");
        }
        for (token, kid, _) in live.iter().rev().take(2).chain(live.iter().step_by(7)) {
            let r = p.get("/api/test/", token).await;
            if r.status != 200 {
                refused.push((started.elapsed(), kid.clone(), r.status, r.text.clone()));
            }
        }
        let first = &tokens[0].1;
        if first_kid_gone_at.is_none() && !last_jwks.contains(first) {
            first_kid_gone_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in watches {
        w.abort();
    }
    let kids: BTreeSet<&String> = tokens.iter().map(|(_, kid, _)| kid).collect();
    assert!(refused.is_empty(), "refused valid tokens: {refused:?}");
    assert!(kids.len() >= 3, "two rotations: three signing keys, got {kids:?}");
    // The first key signed until the first promotion (about 7 s in), and its tokens live 5 s
    // (refresh tokens 6 s): it left the JWKS only after that.
    let rows = p.auth.store.signing_keys().await.unwrap();
    let first_retired = rows.iter().find(|r| r.kid == tokens[0].1).and_then(|r| r.retired_at);
    assert!(first_retired.is_some(), "the first key retired: {rows:?}");
    let last_exp_first = tokens.iter().filter(|(_, kid, _)| *kid == tokens[0].1).map(|(_, _, e)| *e).max().unwrap();
    let gone = first_kid_gone_at.expect("the first key left the JWKS within the run");
    let gone_epoch = chrono::Utc::now().timestamp() - (started.elapsed() - gone).as_secs() as i64;
    assert!(
        gone_epoch >= last_exp_first,
        "unpublished at {gone_epoch}, before its last token expired at {last_exp_first}"
    );
    p.finish().await;
}

both_backends!(
    two_replicas_rotate_by_themselves_without_a_refused_token,
    verifiers_given_only_the_issuer_url_find_the_keys_through_discovery,
    the_client_keeps_the_jwks_for_its_max_age_then_revalidates_it,
    a_client_with_signing_key_previous_accepts_tokens_of_the_earlier_secret,
    local_mode_verifies_with_the_cached_jwks,
    rotated_keys_are_picked_up_on_the_first_unknown_kid,
    unknown_kids_are_refused_and_refetched_at_most_once,
    hmac_tokens_signed_with_the_public_key_are_refused,
);
