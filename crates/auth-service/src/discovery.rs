//! Authorization server metadata (OpenID Connect Discovery 1.0 and RFC 8414), served at
//! `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`: how a
//! verifier that is not ours finds the JWKS from the issuer URL alone.
//!
//! The document needs an issuer that is a URL (`ISSUER=https://auth.internal:8443`): every
//! endpoint it names is that URL plus the route's path, and a verifier checks the tokens' `iss`
//! against it. Without one, discovery answers 404 and the service says why in its log.

use axum::http::Uri;
use serde_json::{Value, json};

use crate::claims;
use crate::settings::Settings;

/// Where the JWKS is published, relative to the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// OpenID Connect Discovery's document, relative to the issuer.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// RFC 8414's document, relative to the issuer.
pub const OAUTH_SERVER_PATH: &str = "/.well-known/oauth-authorization-server";

/// Why there is no discovery document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// `ISSUER` is not set.
    #[error("discovery is off: ISSUER is not set (set it to this service's URL as verifiers reach it)")]
    NoIssuer,
    /// `ISSUER` is set to something other than an `http(s)://` URL without query or fragment.
    #[error("discovery is off: ISSUER {0:?} is not an http:// or https:// URL without query or fragment")]
    NotUrl(String),
}

/// The issuer URL of `settings`, checked.
pub fn issuer_url(settings: &Settings) -> Result<&str, Unavailable> {
    let issuer = settings.issuer.as_deref().ok_or(Unavailable::NoIssuer)?;
    let not_url = || Unavailable::NotUrl(issuer.to_owned());
    let uri: Uri = issuer.parse().map_err(|_| not_url())?;
    let web = matches!(uri.scheme_str(), Some("http" | "https"));
    let plain = uri.query().is_none() && !issuer.contains('#');
    if !web || uri.authority().is_none() || !plain {
        return Err(not_url());
    }
    Ok(issuer)
}

/// The metadata document of `settings` (the same at both addresses).
///
/// The token endpoints take SimpleJWT's JSON bodies (`email` + `password`, `refresh`), not
/// OAuth form posts; the document lists the grants they stand for (`password`,
/// `refresh_token`) and no client authentication (`none`). There is no authorization endpoint,
/// so no response type. `revocation_endpoint` is `/auth/token/blacklist/`, which takes
/// SimpleJWT's `{"refresh"}` body rather than RFC 7009's `token` form field.
pub fn document(settings: &Settings) -> Result<Value, Unavailable> {
    let issuer = issuer_url(settings)?;
    let base = issuer.trim_end_matches('/');
    let mut claims: Vec<&str> = vec!["token_type", "exp", "iat", "jti", &settings.user_id_claim, "iss"];
    if settings.audience.is_some() {
        claims.push("aud");
    }
    claims.extend(claims::preset_claim_names(settings.claims_preset));
    Ok(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "token_endpoint": format!("{base}/auth/token/"),
        "userinfo_endpoint": format!("{base}/auth/user/"),
        "revocation_endpoint": format!("{base}/auth/token/blacklist/"),
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [format!("{:?}", settings.algorithm)],
        "token_endpoint_auth_signing_alg_values_supported": [],
        "claims_supported": claims,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(issuer: Option<&str>) -> Settings {
        Settings { issuer: issuer.map(str::to_owned), ..Settings::default() }
    }

    #[test]
    fn the_issuer_must_be_a_web_url() {
        assert_eq!(issuer_url(&settings(None)), Err(Unavailable::NoIssuer));
        for bad in ["gatehouse", "/auth", "ftp://a", "https://a/?x=1", "https://a/#f", "https://"] {
            assert!(matches!(issuer_url(&settings(Some(bad))), Err(Unavailable::NotUrl(_))), "{bad}");
        }
        for good in ["https://auth.internal:8443", "http://127.0.0.1:8000/", "https://a.example/tenant"] {
            assert_eq!(issuer_url(&settings(Some(good))), Ok(good));
        }
    }

    #[test]
    fn every_endpoint_hangs_off_the_issuer() {
        let doc = document(&settings(Some("https://auth.internal:8443/"))).unwrap();
        assert_eq!(doc["issuer"], "https://auth.internal:8443/");
        assert_eq!(doc["jwks_uri"], "https://auth.internal:8443/.well-known/jwks.json");
        assert_eq!(doc["token_endpoint"], "https://auth.internal:8443/auth/token/");
        assert_eq!(doc["claims_supported"], json!(["token_type", "exp", "iat", "jti", "user_id", "iss"]));
        assert_eq!(doc["revocation_endpoint"], "https://auth.internal:8443/auth/token/blacklist/");
    }
}
