//! The client crate's per-request work in local mode: `client_service::authenticate` (bearer
//! parsing, HS256 verification or a verified-token cache hit, mirror lookup) against a SQLite
//! mirror that already holds the user, with the token cache on (a client re-sending its token)
//! and off (every token new), and its parts alone.

use std::hint::black_box;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use client_service::{ClientConfig, ClientState};
use criterion::{Criterion, criterion_group, criterion_main};
use shared_user::jsonwebtoken::{EncodingKey, Header};
use shared_user::user::now_utc;
use shared_user::{AccessGroup, TokenType, User};

fn client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = loadtest::setup::signing_key();
    let state_with = |token_cache_size: usize| {
        let db_name = format!("mirror-{token_cache_size}.db");
        rt.block_on(async {
            let db = loadtest::setup::sqlite(dir.path(), &db_name, 8).await.unwrap();
            // Nothing listens on the discard port: the mirror must answer every lookup itself.
            let mut config = ClientConfig::new("http://127.0.0.1:9", Some(key.as_bytes().to_vec()));
            config.mirror_ttl = Duration::from_secs(3600);
            config.token_cache_size = token_cache_size;
            let state = ClientState::new(config, db).unwrap();
            let user = User {
                id: 42,
                email: "bench@example.com".into(),
                first_name: "Bench".into(),
                last_name: "User".into(),
                date_joined: now_utc(),
                last_login: None,
                is_active: true,
                is_staff: false,
                is_superuser: false,
                access_groups: vec![AccessGroup { name: "billing".into(), level: Some("admin".into()) }],
            };
            state.mirror().upsert(&user).await.unwrap();
            state
        })
    };
    let state = state_with(10_000);
    let uncached = state_with(0);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "token_type": "access", "exp": now + 3600, "iat": now,
        "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": 42
    });
    let token =
        shared_user::jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes()))
            .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    assert_eq!(rt.block_on(client_service::authenticate(&state, &headers)).unwrap().id, 42);
    assert_eq!(rt.block_on(client_service::authenticate(&uncached, &headers)).unwrap().id, 42);

    let mut g = c.benchmark_group("client");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    g.bench_function("authenticate (token cache hit + mirror)", |b| {
        b.to_async(&rt).iter(|| async { client_service::authenticate(&state, black_box(&headers)).await.unwrap() })
    });
    g.bench_function("authenticate (TOKEN_CACHE_SIZE=0: verify + mirror)", |b| {
        b.to_async(&rt).iter(|| async { client_service::authenticate(&uncached, black_box(&headers)).await.unwrap() })
    });
    let client_service::keys::KeySource::Hmac(verifier) = state.keys() else { panic!("local HMAC mode expected") };
    let verifier = verifier.clone();
    g.bench_function("Verifier::decode only", |b| {
        b.iter(|| verifier.decode(black_box(&token), Some(TokenType::Access)).unwrap())
    });
    g.bench_function("Mirror::find only (SQLite)", |b| {
        b.to_async(&rt).iter(|| async { state.mirror().find(black_box(42)).await.unwrap().unwrap() })
    });
    g.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
