//! JSON Web Key Sets: publishing our public keys and turning a fetched set into verification
//! keys. Symmetric (`oct`) keys are never published and never accepted from a set.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::token::NamedKey;

/// Whether `alg` is an asymmetric algorithm we sign with or accept from a key set.
pub fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::EdDSA
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}

/// The public JWK of a private signing key, named `kid`.
pub fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Result<Jwk, jsonwebtoken::errors::Error> {
    let mut jwk = Jwk::from_encoding_key(key, alg)?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::PS384 => Some(Algorithm::PS384),
            KeyAlgorithm::PS512 => Some(Algorithm::PS512),
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Some(Algorithm::ES384),
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        _ => None,
    }
}

/// Verification keys from a fetched set: asymmetric keys with a `kid` only; anything else
/// (symmetric keys, unknown algorithms, encryption keys, malformed keys) is skipped.
pub fn keys_from_set(set: &JwkSet) -> Vec<NamedKey> {
    set.keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = algorithm_of(jwk).filter(|a| is_asymmetric(*a))?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(NamedKey { kid: Some(kid), algorithm, key })
        })
        .collect()
}
