//! Sign and verify one access token per algorithm.
//!
//! HS256 goes through the services' own code (`auth_service::tokens::Keys::mint`,
//! `shared_user::Verifier::decode`). The auth-service signs HMAC only today (`Keys::hmac` is its
//! one constructor), so EdDSA, ES256 and RS256 tokens are signed with `jsonwebtoken::encode`
//! directly, in the same claim layout; they are verified by `Verifier::decode` with a
//! `NamedKey` (kid + public key), which already accepts asymmetric keys.

use std::hint::black_box;
use std::time::Duration;

use auth_service::tokens::Keys;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value};
use shared_user::token::{NamedKey, TokenType, Verifier, VerifySettings};

/// The claims `Keys::mint` writes, in its order.
fn claims(user_id: i64) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = Map::new();
    claims.insert("token_type".into(), Value::from("access"));
    claims.insert("exp".into(), Value::from(now + 3600));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("jti".into(), Value::from(uuid::Uuid::new_v4().simple().to_string()));
    claims.insert("user_id".into(), Value::from(user_id));
    claims
}

fn tokens(c: &mut Criterion) {
    let mut g = c.benchmark_group("tokens");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);

    let secret = loadtest::setup::signing_key();
    let keys =
        Keys::hmac(secret.as_bytes(), VerifySettings::default(), Duration::from_secs(300), Duration::from_secs(86_400));
    g.bench_function("HS256/sign Keys::mint", |b| b.iter(|| keys.mint(TokenType::Access, black_box(42)).unwrap()));
    let token = keys.mint(TokenType::Access, 42).unwrap().token;
    let verifier = keys.verifier();
    g.bench_function("HS256/verify Verifier::decode", |b| {
        b.iter(|| verifier.decode(black_box(&token), Some(TokenType::Access)).unwrap())
    });

    type Loader = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
    type PubLoader = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
    let asymmetric: [(Algorithm, &str, &str, &str, Loader, PubLoader); 3] = [
        (
            Algorithm::EdDSA,
            "EdDSA",
            include_str!("keys/ed25519.pem"),
            include_str!("keys/ed25519.pub.pem"),
            EncodingKey::from_ed_pem,
            DecodingKey::from_ed_pem,
        ),
        (
            Algorithm::ES256,
            "ES256",
            include_str!("keys/ec256.pem"),
            include_str!("keys/ec256.pub.pem"),
            EncodingKey::from_ec_pem,
            DecodingKey::from_ec_pem,
        ),
        (
            Algorithm::RS256,
            "RS256",
            include_str!("keys/rsa2048.pem"),
            include_str!("keys/rsa2048.pub.pem"),
            EncodingKey::from_rsa_pem,
            DecodingKey::from_rsa_pem,
        ),
    ];
    for (alg, name, private, public, load_private, load_public) in asymmetric {
        let encoding = load_private(private.as_bytes()).unwrap();
        let kid = format!("bench-{name}");
        let mut header = Header::new(alg);
        header.kid = Some(kid.clone());
        let claims = claims(42);
        g.bench_function(format!("{name}/sign jsonwebtoken::encode"), |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).unwrap())
        });
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
        let settings = VerifySettings { algorithms: vec![alg], ..VerifySettings::default() };
        let key = NamedKey { kid: Some(kid), algorithm: alg, key: load_public(public.as_bytes()).unwrap() };
        let verifier = Verifier::new(settings, vec![key]);
        g.bench_function(format!("{name}/verify Verifier::decode"), |b| {
            b.iter(|| verifier.decode(black_box(&token), Some(TokenType::Access)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
