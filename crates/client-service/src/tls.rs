//! TLS towards the auth-service: which certificates the client trusts (`REMOTE_AUTH_CA_FILE`,
//! `REMOTE_AUTH_SSL_VERIFY`), the certificate it presents (`REMOTE_AUTH_CLIENT_CERT_FILE` +
//! `REMOTE_AUTH_CLIENT_KEY_FILE`), and the words for a handshake that failed, read from the
//! error's source chain, so an operator reads "certificate expired", not "connection error".
//!
//! The files are read and checked once, when the configuration is built: a missing file, a file
//! without PEM, or a key that does not belong to its certificate stops the binary at start.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::settings::{ConfigError, SslVerify};

const CA_FILE: &str = "REMOTE_AUTH_CA_FILE";
const SSL_VERIFY: &str = "REMOTE_AUTH_SSL_VERIFY";
const CERT_FILE: &str = "REMOTE_AUTH_CLIENT_CERT_FILE";
const KEY_FILE: &str = "REMOTE_AUTH_CLIENT_KEY_FILE";

/// The TLS settings as given: paths, EasyJWT's switch and development mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsFiles<'a> {
    /// `REMOTE_AUTH_CA_FILE`.
    pub(crate) ca_file: Option<&'a Path>,
    /// `REMOTE_AUTH_SSL_VERIFY`.
    pub(crate) ssl_verify: &'a SslVerify,
    /// `REMOTE_AUTH_CLIENT_CERT_FILE`.
    pub(crate) client_cert: Option<&'a Path>,
    /// `REMOTE_AUTH_CLIENT_KEY_FILE`.
    pub(crate) client_key: Option<&'a Path>,
    /// `GATEHOUSE_DEV`.
    pub(crate) dev: bool,
}

/// What the client trusts and presents, read and checked.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    trust: Trust,
    identity: Option<reqwest::Identity>,
}

/// Whose certificates the auth-service's certificate may chain to.
#[derive(Debug, Clone)]
enum Trust {
    /// The system's roots (through the platform verifier).
    System,
    /// Exactly these CAs, and no system root.
    Only(Vec<reqwest::Certificate>),
    /// Anything (`REMOTE_AUTH_SSL_VERIFY=false`, development mode only).
    Unchecked,
}

impl Tls {
    /// Reads and checks the files the settings name.
    pub(crate) fn load(files: TlsFiles<'_>) -> Result<Self, ConfigError> {
        let bundle = match (files.ssl_verify, files.ca_file) {
            (SslVerify::Off, Some(_)) => return Err(ConfigError::VerifyOffWithCa),
            (SslVerify::Off, None) if !files.dev => return Err(ConfigError::VerifyOffOutsideDev),
            (SslVerify::Off, None) => None,
            (SslVerify::CaFile(named), Some(ca_file)) if !same_file(named, ca_file) => {
                return Err(ConfigError::CaConflict { ssl_verify: named.clone(), ca_file: ca_file.to_owned() });
            }
            (SslVerify::CaFile(named), _) => Some((SSL_VERIFY, named.as_path())),
            (SslVerify::Verify, Some(ca_file)) => Some((CA_FILE, ca_file)),
            (SslVerify::Verify, None) => None,
        };
        let trust = match bundle {
            Some((setting, path)) => {
                let certs = pem_blocks(setting, path, &["CERTIFICATE"])?
                    .iter()
                    .map(|block| reqwest::Certificate::from_der(block.contents()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| file_error(setting, path, chain(&e)))?;
                let trust = Trust::Only(certs);
                // Each certificate must be usable as a trust anchor.
                Tls { trust: trust.clone(), identity: None }.check().map_err(|e| file_error(setting, path, e))?;
                trust
            }
            None if matches!(files.ssl_verify, SslVerify::Off) => Trust::Unchecked,
            None => Trust::System,
        };
        let identity = match (files.client_cert, files.client_key) {
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::ClientCertHalf { given: CERT_FILE, missing: KEY_FILE }),
            (None, Some(_)) => return Err(ConfigError::ClientCertHalf { given: KEY_FILE, missing: CERT_FILE }),
            (Some(cert), Some(key)) => Some(identity(cert, key)?),
        };
        let tls = Tls { trust, identity };
        if tls.identity.is_some() {
            let key = files.client_key.unwrap_or(Path::new(""));
            tls.check().map_err(|e| file_error(KEY_FILE, key, e))?;
        }
        Ok(tls)
    }

    /// The TLS part of the one HTTP client of the auth-service.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let builder = match &self.trust {
            Trust::System => builder,
            Trust::Only(certs) => builder.tls_certs_only(certs.iter().cloned()),
            Trust::Unchecked => builder.tls_danger_accept_invalid_certs(true),
        };
        match &self.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }

    /// Whether the auth-service's certificate goes unchecked (`REMOTE_AUTH_SSL_VERIFY=false`).
    pub(crate) fn unchecked(&self) -> bool {
        matches!(self.trust, Trust::Unchecked)
    }

    /// Builds a client with these settings alone, so a CA that is no trust anchor or a key that
    /// does not belong to its certificate is found at start.
    fn check(&self) -> Result<(), String> {
        self.apply(reqwest::Client::builder()).build().map(drop).map_err(|e| chain(&e))
    }
}

/// Whether two paths name the same file (as written, or once resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn file_error(setting: &'static str, path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::TlsFile { setting, path: PathBuf::from(path), reason: reason.into() }
}

/// The PEM blocks of `path` whose tag is one of `tags` (others, such as `EC PARAMETERS`, are
/// skipped); an error when there is none.
fn pem_blocks(setting: &'static str, path: &Path, tags: &[&str]) -> Result<Vec<pem::Pem>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(setting, path, format!("cannot be read: {e}")))?;
    let blocks = pem::parse_many(&bytes).map_err(|e| file_error(setting, path, format!("not PEM: {e}")))?;
    if blocks.iter().any(|b| b.tag() == "ENCRYPTED PRIVATE KEY") {
        return Err(file_error(setting, path, "an encrypted private key: give the key unencrypted (mode 0600)"));
    }
    let wanted: Vec<pem::Pem> = blocks.into_iter().filter(|b| tags.contains(&b.tag())).collect();
    if wanted.is_empty() {
        return Err(file_error(setting, path, format!("holds no PEM block of {}", tags.join(" or "))));
    }
    Ok(wanted)
}

/// The client certificate chain of `cert` with the private key of `key`.
fn identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, ConfigError> {
    let mut blocks = pem_blocks(CERT_FILE, cert, &["CERTIFICATE"])?;
    let keys = pem_blocks(KEY_FILE, key, &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"])?;
    if keys.len() > 1 {
        return Err(file_error(KEY_FILE, key, "holds more than one private key"));
    }
    blocks.extend(keys);
    reqwest::Identity::from_pem(pem::encode_many(&blocks).as_bytes()).map_err(|e| file_error(KEY_FILE, key, chain(&e)))
}

/// An error and its sources, one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        let more = source.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = source.source();
    }
    text
}

/// Why a TLS handshake with the auth-service failed: the one log line of a call that failed so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The certificate chains to no trusted CA (or is otherwise refused by the verifier).
    Untrusted(String),
    /// The certificate has expired (or is not valid yet).
    Expired(String),
    /// The certificate does not name the host of `REMOTE_AUTH_SERVICE_URL`.
    HostName(String),
    /// The auth-service refused this client's certificate, or the lack of one.
    ClientCertificate(String),
    /// Any other handshake failure (plain HTTP on the port, no common protocol version...).
    Handshake(String),
}

impl TlsFailure {
    /// The short name of the cause (the `cause` field of the log line).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            TlsFailure::Untrusted(_) => "untrusted",
            TlsFailure::Expired(_) => "expired",
            TlsFailure::HostName(_) => "host_name",
            TlsFailure::ClientCertificate(_) => "client_certificate",
            TlsFailure::Handshake(_) => "handshake",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Untrusted(why) => write!(f, "auth-service certificate not trusted: {why}"),
            TlsFailure::Expired(why) => write!(f, "auth-service certificate {why}"),
            TlsFailure::HostName(why) => write!(f, "auth-service certificate host name mismatch: {why}"),
            TlsFailure::ClientCertificate(why) => write!(f, "auth-service refused this client's certificate: {why}"),
            TlsFailure::Handshake(why) => write!(f, "TLS handshake with the auth-service failed: {why}"),
        }
    }
}

/// The TLS failure behind a failed call, if that is what it is: the first `rustls::Error` in
/// the source chain (also inside an `io::Error`, whose `source` skips the error it wraps).
pub(crate) fn failure_of(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(classify(tls));
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(found) = failure_of(inner) {
                return Some(found);
            }
        }
        next = error.source();
    }
    None
}

/// A time of a certificate, as a date.
fn date(time: rustls::pki_types::UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(|| format!("{}s after 1970", time.as_secs()), |t| t.to_rfc3339())
}

fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::{AlertDescription as Alert, CertificateError as Cert};
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => TlsFailure::Untrusted(
                "UnknownIssuer (signed by no CA of REMOTE_AUTH_CA_FILE, or of the system roots when that is unset)"
                    .into(),
            ),
            Cert::Expired => TlsFailure::Expired("expired".into()),
            Cert::ExpiredContext { time, not_after } => {
                TlsFailure::Expired(format!("expired on {} (now {})", date(*not_after), date(*time)))
            }
            Cert::NotValidYet => TlsFailure::Expired("not valid yet".into()),
            Cert::NotValidYetContext { time, not_before } => {
                TlsFailure::Expired(format!("not valid before {} (now {})", date(*not_before), date(*time)))
            }
            Cert::NotValidForName => TlsFailure::HostName("NotValidForName".into()),
            Cert::NotValidForNameContext { expected, presented } => TlsFailure::HostName(format!(
                "REMOTE_AUTH_SERVICE_URL names {}, the certificate names {}",
                expected.to_str(),
                if presented.is_empty() { "no host".to_owned() } else { presented.join(", ") }
            )),
            other => TlsFailure::Untrusted(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(
            alert @ (Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => TlsFailure::ClientCertificate(format!(
            "{alert:?} (see REMOTE_AUTH_CLIENT_CERT_FILE and REMOTE_AUTH_CLIENT_KEY_FILE)"
        )),
        other => TlsFailure::Handshake(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ssl_verify: &SslVerify) -> TlsFiles<'_> {
        TlsFiles { ca_file: None, ssl_verify, client_cert: None, client_key: None, dev: false }
    }

    #[test]
    fn ssl_verify_false_needs_development_mode() {
        let off = SslVerify::Off;
        assert_eq!(Tls::load(files(&off)).unwrap_err(), ConfigError::VerifyOffOutsideDev);
        assert!(Tls::load(TlsFiles { dev: true, ..files(&off) }).unwrap().unchecked());
        let ca = Path::new("/nonexistent/ca.pem");
        let e = Tls::load(TlsFiles { dev: true, ca_file: Some(ca), ..files(&off) }).unwrap_err();
        assert_eq!(e, ConfigError::VerifyOffWithCa);
    }

    #[test]
    fn two_different_ca_bundles_are_refused() {
        let named = SslVerify::CaFile("/nonexistent/a.pem".into());
        let e = Tls::load(TlsFiles { ca_file: Some(Path::new("/nonexistent/b.pem")), ..files(&named) }).unwrap_err();
        assert!(matches!(e, ConfigError::CaConflict { .. }), "{e}");
        // The same path in both is one bundle (here: one that cannot be read).
        let e = Tls::load(TlsFiles { ca_file: Some(Path::new("/nonexistent/a.pem")), ..files(&named) }).unwrap_err();
        assert!(e.to_string().starts_with("REMOTE_AUTH_SSL_VERIFY=/nonexistent/a.pem: cannot be read"), "{e}");
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let verify = SslVerify::Verify;
        let path = Path::new("/nonexistent/client.pem");
        let e = Tls::load(TlsFiles { client_cert: Some(path), ..files(&verify) }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "REMOTE_AUTH_CLIENT_CERT_FILE is set without REMOTE_AUTH_CLIENT_KEY_FILE: a client certificate needs both"
        );
        let e = Tls::load(TlsFiles { client_key: Some(path), ..files(&verify) }).unwrap_err();
        assert_eq!(e, ConfigError::ClientCertHalf { given: KEY_FILE, missing: CERT_FILE });
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let verify = SslVerify::Verify;
        let e = Tls::load(TlsFiles { ca_file: Some(&path), ..files(&verify) }).unwrap_err();
        assert!(e.to_string().contains("REMOTE_AUTH_CA_FILE=") && e.to_string().contains("holds no PEM block"), "{e}");
    }

    #[test]
    fn handshake_failures_are_named() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let failure = failure_of(&io).unwrap();
        assert_eq!(failure.label(), "untrusted");
        assert!(failure.to_string().starts_with("auth-service certificate not trusted: UnknownIssuer"), "{failure}");
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(failure_of(&alert).unwrap().label(), "client_certificate");
        assert_eq!(failure_of(&std::io::Error::other("refused")), None);
    }
}
