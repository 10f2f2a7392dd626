//! A private certificate authority for people without a PKI (what `auth-service certs` writes)
//! and for tests: a CA, server certificates for host names and addresses, client certificates
//! for a name, all ECDSA P-256 made with rcgen. Server certificates may only serve
//! (`serverAuth`), client certificates may only be presented by clients (`clientAuth`), so a
//! server's key cannot log in as a client of the same CA.
//!
//! Files are written through a temporary file renamed into place (a listener watching them never
//! reads half a file), private keys with mode 0600, and an existing private key is never
//! replaced unless asked to ([`Overwrite::Replace`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

/// How long a CA made here is valid: 10 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86400);
/// How long a server or client certificate made here is valid: 825 days, the longest that
/// clients limiting certificate lifetimes (Apple's) still accept.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(825 * 86400);

/// File names inside a certificate directory.
pub mod files {
    /// The CA certificate (give it to clients: `REMOTE_AUTH_CA_FILE`; and to the server for
    /// client certificates: `TLS_CLIENT_CA_FILE`).
    pub const CA_CERT: &str = "ca.pem";
    /// The CA's private key (keep it offline once the certificates are made).
    pub const CA_KEY: &str = "ca-key.pem";
    /// The server certificate (`TLS_CERT_FILE`).
    pub const SERVER_CERT: &str = "server.pem";
    /// The server's private key (`TLS_KEY_FILE`).
    pub const SERVER_KEY: &str = "server-key.pem";

    /// The client certificate of `name` (`REMOTE_AUTH_CLIENT_CERT_FILE`).
    pub fn client_cert(name: &str) -> String {
        format!("client-{name}.pem")
    }

    /// The private key of `name`'s client certificate (`REMOTE_AUTH_CLIENT_KEY_FILE`).
    pub fn client_key(name: &str) -> String {
        format!("client-{name}-key.pem")
    }
}

/// Why a certificate could not be made, read or written. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused (e.g. a host name that is not a DNS name).
    #[error("cannot make the certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The private key exists and replacing it was not asked for.
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    /// No host name or address was given for a server certificate.
    #[error("a server certificate needs at least one host name or address (--host)")]
    NoHost,
    /// A client name that cannot be a file name or a certificate subject.
    #[error("client name {0:?}: use letters, digits, '.', '-' and '_' only")]
    BadName(String),
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).field("key_pem", &"[redacted]").finish()
    }
}

/// When a certificate is valid, from now on.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start, relative to now (negative: in the past).
    pub not_before: time::Duration,
    /// End, relative to now (negative: already expired).
    pub not_after: time::Duration,
}

impl Validity {
    /// From an hour ago (clocks differ) for `length`.
    pub fn from_now(length: Duration) -> Self {
        let length = time::Duration::try_from(length).unwrap_or(time::Duration::MAX);
        Self { not_before: time::Duration::hours(-1), not_after: length }
    }

    /// A certificate that expired yesterday (tests).
    pub fn expired() -> Self {
        Self { not_before: time::Duration::days(-30), not_after: time::Duration::days(-1) }
    }

    fn apply(self, params: &mut CertificateParams) {
        let now = OffsetDateTime::now_utc();
        params.not_before = now.saturating_add(self.not_before);
        params.not_after = now.saturating_add(self.not_after);
    }
}

/// A certificate authority able to sign.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA named `name` (its subject's common name), valid for [`CA_VALIDITY`].
    pub fn new(name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "Gatehouse");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        Validity::from_now(CA_VALIDITY).apply(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// The CA in `cert_pem` with its private key `key_pem` (files [`Ca::write`] made, or an
    /// existing CA of yours).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self { cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned(), issuer })
    }

    /// The CA of directory `dir` ([`files::CA_CERT`], [`files::CA_KEY`]).
    pub fn read(dir: &Path) -> Result<Self, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
        };
        Self::from_pem(&read(files::CA_CERT)?, &read(files::CA_KEY)?)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `hosts` (DNS names or IP addresses; the first is also the
    /// common name), valid for [`LEAF_VALIDITY`].
    pub fn server(&self, hosts: &[impl AsRef<str>]) -> Result<Issued, PkiError> {
        self.server_valid(hosts, Validity::from_now(LEAF_VALIDITY))
    }

    /// A server certificate for `hosts` valid over `validity` (an expired one for tests).
    pub fn server_valid(&self, hosts: &[impl AsRef<str>], validity: Validity) -> Result<Issued, PkiError> {
        let hosts: Vec<String> = hosts.iter().map(|h| h.as_ref().trim().to_owned()).filter(|h| !h.is_empty()).collect();
        let first = hosts.first().cloned().ok_or(PkiError::NoHost)?;
        let mut params = CertificateParams::new(hosts)?;
        params.distinguished_name.push(DnType::CommonName, first);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, validity)
    }

    /// A client certificate for `name` (its common name, and its DNS name when it is one),
    /// valid for [`LEAF_VALIDITY`].
    pub fn client(&self, name: &str) -> Result<Issued, PkiError> {
        check_name(name)?;
        let sans = if name.contains('_') { Vec::new() } else { vec![name.to_owned()] };
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, Validity::from_now(LEAF_VALIDITY))
    }

    fn sign(&self, mut params: CertificateParams, validity: Validity) -> Result<Issued, PkiError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Writes this CA into `dir` ([`files::CA_CERT`], [`files::CA_KEY`]).
    pub fn write(&self, dir: &Path, overwrite: Overwrite) -> Result<(), PkiError> {
        write_pair(dir, files::CA_CERT, files::CA_KEY, &self.cert_pem, &self.key_pem, overwrite)
    }
}

/// Whether an existing private key may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse ([`PkiError::Exists`]).
    Refuse,
    /// Replace it (`--force`).
    Replace,
}

fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok { Ok(()) } else { Err(PkiError::BadName(name.to_owned())) }
}

/// Writes `issued` into `dir` as `cert` and `key` (the key mode 0600).
pub fn write_issued(dir: &Path, cert: &str, key: &str, issued: &Issued, overwrite: Overwrite) -> Result<(), PkiError> {
    write_pair(dir, cert, key, &issued.cert_pem, &issued.key_pem, overwrite)
}

fn write_pair(
    dir: &Path,
    cert: &str,
    key: &str,
    cert_pem: &str,
    key_pem: &str,
    overwrite: Overwrite,
) -> Result<(), PkiError> {
    let key_path = dir.join(key);
    if overwrite == Overwrite::Refuse && key_path.exists() {
        return Err(PkiError::Exists(key_path));
    }
    // The key first: a certificate never sits next to a key it does not belong to for longer
    // than the two renames.
    write_file(&key_path, key_pem, 0o600)?;
    write_file(&dir.join(cert), cert_pem, 0o644)
}

/// Writes `text` to `path` with `mode` through a temporary file in the same directory renamed
/// over it.
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // tempfile creates the file with mode 0600: the key is never readable by others, not even
    // for a moment.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_0600_and_never_replaced_unless_asked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA").unwrap();
        ca.write(dir.path(), Overwrite::Refuse).unwrap();
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(files::CA_KEY), mode(files::CA_CERT)), (0o600, 0o644));
        let again = Ca::new("other").unwrap();
        let refused = again.write(dir.path(), Overwrite::Refuse).unwrap_err();
        assert!(refused.to_string().ends_with("ca-key.pem exists; pass --force to replace it"), "{refused}");
        assert_eq!(Ca::read(dir.path()).unwrap().cert_pem(), ca.cert_pem(), "the first CA is kept");
        again.write(dir.path(), Overwrite::Replace).unwrap();
        assert_eq!(Ca::read(dir.path()).unwrap().cert_pem(), again.cert_pem());
        assert_eq!(mode(files::CA_KEY), 0o600);
    }

    #[test]
    fn names_and_hosts_are_checked() {
        let ca = Ca::new("test CA").unwrap();
        assert!(matches!(ca.server(&[] as &[&str]), Err(PkiError::NoHost)));
        assert!(ca.server(&["localhost", "127.0.0.1", "::1"]).is_ok());
        assert!(matches!(ca.client("../x"), Err(PkiError::BadName(_))));
        assert!(ca.client("client-service").is_ok());
        let issued = ca.client("feed_reader").unwrap();
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"), "Debug never shows the key");
    }
}
