//! TLS for a listener (rustls with the aws-lc-rs provider): TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, optional client certificates, and a certificate that changes without a restart.
//!
//! [`TlsFiles`] names the PEM files; [`Tls::load`] reads them into the configuration every new
//! handshake uses. [`Tls::watch`] re-reads them on SIGHUP and when their contents change
//! (polled): a good new set replaces the configuration for the next handshakes (open
//! connections keep theirs), a bad one keeps the old configuration and is reported by exactly
//! one error line. A connection's verified client certificate reaches handlers as the request
//! extension [`ClientCertificate`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use crate::settings::SettingError;

/// How often [`Tls::watch`] looks at the files by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Whether a listener asks clients for a certificate (`TLS_CLIENT_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientAuth {
    /// Never asks.
    #[default]
    None,
    /// Asks; a client without one is served, a certificate it presents must verify.
    Optional,
    /// A client without a certificate signed by the client CA fails the handshake.
    Required,
}

/// Where a listener's certificate, key and client CA are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CAs client certificates must be signed by (with `client_auth` other than `None`).
    pub client_ca: Option<PathBuf>,
    /// Whether clients are asked for a certificate.
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    /// A certificate and key; no client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self { cert: cert.into(), key: key.into(), client_ca: None, client_auth: ClientAuth::None }
    }

    /// The same, asking clients for certificates signed by the CAs in `ca` as `auth` says.
    pub fn with_client_auth(self, ca: impl Into<PathBuf>, auth: ClientAuth) -> Self {
        Self { client_ca: Some(ca.into()), client_auth: auth, ..self }
    }

    /// The TLS files of a listener from its settings, or `None` for plain HTTP. `prefix` is put
    /// before the setting names in the errors (`""` for `TLS_CERT_FILE`, `"MANAGEMENT_"` for
    /// `MANAGEMENT_TLS_CERT_FILE`...). A certificate without a key (or the reverse), client
    /// certificates without TLS, and client authentication without a CA file (or the reverse)
    /// are errors of one line.
    pub fn from_settings(
        prefix: &str,
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
        client_auth: ClientAuth,
    ) -> Result<Option<Self>, SettingError> {
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(SettingError(format!("{prefix}TLS_CERT_FILE is set without {prefix}TLS_KEY_FILE")));
            }
            (None, Some(_)) => {
                return Err(SettingError(format!("{prefix}TLS_KEY_FILE is set without {prefix}TLS_CERT_FILE")));
            }
            (None, None) if client_ca.is_some() || client_auth != ClientAuth::None => {
                return Err(SettingError(format!(
                    "{prefix}TLS_CLIENT_CA_FILE and {prefix}TLS_CLIENT_AUTH need TLS: set {prefix}TLS_CERT_FILE and \
                     {prefix}TLS_KEY_FILE"
                )));
            }
            (None, None) => return Ok(None),
        };
        let files = Self::new(cert, key);
        match (client_ca, client_auth) {
            (None, ClientAuth::None) => Ok(Some(files)),
            (Some(ca), auth @ (ClientAuth::Optional | ClientAuth::Required)) => {
                Ok(Some(files.with_client_auth(ca, auth)))
            }
            (None, _) => Err(SettingError(format!(
                "{prefix}TLS_CLIENT_AUTH asks for client certificates: set {prefix}TLS_CLIENT_CA_FILE to the CA \
                 that signs them"
            ))),
            (Some(_), ClientAuth::None) => Err(SettingError(format!(
                "{prefix}TLS_CLIENT_CA_FILE is set but {prefix}TLS_CLIENT_AUTH is none: set it to optional or \
                 required (or unset the CA file)"
            ))),
        }
    }
}

/// Why a set of TLS files cannot be used. `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        why: String,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{}: no PEM certificate in it", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error("{}: no PEM private key in it ({})", .0.display(), .1)]
    NoKey(PathBuf, String),
    /// The client CA file holds no usable CA certificate.
    #[error("{}: no usable CA certificate in it ({})", .0.display(), .1)]
    ClientCa(PathBuf, String),
    /// rustls refused the set (e.g. the key does not belong to the certificate).
    #[error("{}: {source}", cert.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The bytes of the files of a [`TlsFiles`] as read at one time (what the watcher compares).
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    cert: Result<Vec<u8>, String>,
    key: Result<Vec<u8>, String>,
    client_ca: Option<Result<Vec<u8>, String>>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Self {
        let read = |path: &Path| std::fs::read(path).map_err(|e| e.to_string());
        Self { cert: read(&files.cert), key: read(&files.key), client_ca: files.client_ca.as_deref().map(read) }
    }
}

/// A listener's TLS configuration, loaded from [`TlsFiles`] and replaceable while serving.
/// Clones share it.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    watch: Mutex<WatchState>,
}

/// What the watcher knows about the files.
struct WatchState {
    /// The contents the current configuration was built from.
    loaded: Contents,
    /// The contents seen at the previous look.
    seen: Contents,
    /// Contents whose failure was already logged.
    reported: Option<Contents>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.inner.files).finish_non_exhaustive()
    }
}

/// How [`Tls::reload`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The files changed and the new ones serve from the next handshake on.
    Changed,
    /// The files are the ones already loaded.
    Unchanged,
}

impl Tls {
    /// The configuration built from `files` (read now). Nothing watches them until
    /// [`Tls::watch`].
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let contents = Contents::read(&files);
        let config = build(&files, &contents)?;
        let watch = WatchState { loaded: contents.clone(), seen: contents, reported: None };
        Ok(Self { inner: Arc::new(Inner { files, current: ArcSwap::from_pointee(config), watch: Mutex::new(watch) }) })
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// Reads the files again and, when they changed and are good, serves them from the next
    /// handshake on. A bad set keeps the current configuration and is the error (not logged
    /// here).
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let contents = Contents::read(&self.inner.files);
        let mut watch = self.inner.watch.lock().unwrap_or_else(PoisonError::into_inner);
        watch.seen = contents.clone();
        let result = self.apply(&mut watch, contents.clone());
        if result.is_err() {
            // Said by the caller; the poller does not say it again.
            watch.reported = Some(contents);
        }
        result
    }

    fn apply(&self, watch: &mut WatchState, contents: Contents) -> Result<Reloaded, TlsError> {
        if contents == watch.loaded {
            watch.reported = None;
            return Ok(Reloaded::Unchanged);
        }
        let config = build(&self.inner.files, &contents)?;
        self.inner.current.store(Arc::new(config));
        watch.loaded = contents;
        watch.reported = None;
        Ok(Reloaded::Changed)
    }

    /// Re-reads the files on SIGHUP and when their contents change (looked at every `every`),
    /// for as long as a clone of this `Tls` exists. A reload is logged (info); a bad set of files
    /// keeps the current configuration and is logged once (error): at once on SIGHUP, and for a
    /// change seen by polling once the files stayed the same for one more look (so a
    /// certificate and key replaced one after the other are not reported half-written).
    pub fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(watch(weak, every))
    }

    /// Re-reads the files on SIGHUP: reloads and logs (info when reloaded, one error line when
    /// the files are bad).
    fn reload_on_hangup(&self) {
        let cert = self.inner.files.cert.display();
        match self.reload() {
            Ok(Reloaded::Changed) => tracing::info!(%cert, "SIGHUP: TLS certificate reloaded"),
            Ok(Reloaded::Unchanged) => tracing::info!(%cert, "SIGHUP: TLS files unchanged"),
            Err(e) => tracing::error!("TLS files not reloaded, the previous certificate stays in use: {e}"),
        }
    }

    /// One look by the poller.
    fn poll(&self) {
        let contents = Contents::read(&self.inner.files);
        let mut watch = self.inner.watch.lock().unwrap_or_else(PoisonError::into_inner);
        if contents == watch.loaded {
            watch.seen = contents;
            watch.reported = None;
            return;
        }
        let stable = contents == watch.seen;
        watch.seen = contents.clone();
        match self.apply(&mut watch, contents.clone()) {
            Ok(_) => tracing::info!(cert = %self.inner.files.cert.display(), "TLS files changed: certificate reloaded"),
            Err(e) if stable && watch.reported.as_ref() != Some(&contents) => {
                watch.reported = Some(contents);
                tracing::error!("TLS files not reloaded, the previous certificate stays in use: {e}");
            }
            Err(e) => tracing::debug!("TLS files changed but not usable (yet): {e}"),
        }
    }

    /// The acceptor of the next handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.inner.current.load_full())
    }
}

async fn watch(tls: Weak<Inner>, every: Duration) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; TLS files are reloaded when they change only");
            None
        }
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let Some(inner) = tls.upgrade() else { return };
        let tls = Tls { inner };
        // Reading a few small files: cheap enough for the runtime, and it keeps the order of
        // looks simple.
        if forced { tls.reload_on_hangup() } else { tls.poll() }
    }
}

/// The server configuration of `files` from their `contents`.
fn build(files: &TlsFiles, contents: &Contents) -> Result<ServerConfig, TlsError> {
    let bytes = |path: &Path, read: &Result<Vec<u8>, String>| match read {
        Ok(bytes) => Ok(bytes.clone()),
        Err(why) => Err(TlsError::Read { path: path.to_owned(), why: why.clone() }),
    };
    let cert_pem = bytes(&files.cert, &contents.cert)?;
    let key_pem = bytes(&files.key, &contents.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(files.cert.clone()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey(files.key.clone(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config { cert: files.cert.clone(), source })?;
    let builder = match (&files.client_ca, &contents.client_ca, files.client_auth) {
        (Some(path), Some(read), ClientAuth::Optional | ClientAuth::Required) => {
            let ca_error = |why: String| TlsError::ClientCa(path.clone(), why);
            let ca_pem = bytes(path, read)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("no certificate".to_owned()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if files.client_auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| ca_error(e.to_string()))?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|source| TlsError::Config { cert: files.cert.clone(), source })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The verified certificate a client presented on its TLS connection: a request extension on
/// every request of that connection (absent on plain connections and when the client sent
/// none). Read it with axum's `Option<Extension<ClientCertificate>>`.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    inner: Arc<Names>,
}

#[derive(Debug)]
struct Names {
    common_name: Option<String>,
    dns_names: Vec<String>,
    der: CertificateDer<'static>,
}

impl ClientCertificate {
    /// The names of a (verified) certificate in DER.
    pub fn from_der(der: CertificateDer<'static>) -> Self {
        let (mut common_name, mut dns_names) = (None, Vec::new());
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) {
            common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for name in &san.value.general_names {
                    if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                        dns_names.push((*dns).to_owned());
                    }
                }
            }
        }
        Self { inner: Arc::new(Names { common_name, dns_names, der }) }
    }

    /// The subject's common name (CN), when it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.inner.common_name.as_deref()
    }

    /// The DNS names of its subject alternative names.
    pub fn dns_names(&self) -> &[String] {
        &self.inner.dns_names
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.inner.der
    }

    /// Whether its common name or one of its DNS names is one of `accepted` (ASCII case
    /// ignored).
    pub fn is_one_of(&self, accepted: &[impl AsRef<str>]) -> bool {
        let names = self.common_name().into_iter().chain(self.dns_names().iter().map(String::as_str));
        names.into_iter().any(|name| accepted.iter().any(|a| a.as_ref().eq_ignore_ascii_case(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_make_files_or_say_what_is_missing_in_one_line() {
        let (c, k, ca) = (Some(Path::new("c.pem")), Some(Path::new("k.pem")), Some(Path::new("ca.pem")));
        let none = ClientAuth::None;
        assert_eq!(TlsFiles::from_settings("", None, None, None, none).unwrap(), None);
        assert_eq!(TlsFiles::from_settings("", c, k, None, none).unwrap(), Some(TlsFiles::new("c.pem", "k.pem")));
        let err = |prefix, c, k, ca, auth| TlsFiles::from_settings(prefix, c, k, ca, auth).unwrap_err().to_string();
        assert_eq!(err("", c, None, None, none), "TLS_CERT_FILE is set without TLS_KEY_FILE");
        assert_eq!(
            err("MANAGEMENT_", None, k, None, none),
            "MANAGEMENT_TLS_KEY_FILE is set without MANAGEMENT_TLS_CERT_FILE"
        );
        assert!(err("", c, k, None, ClientAuth::Required).starts_with("TLS_CLIENT_AUTH asks for client certificates"));
        assert!(err("", c, k, ca, none).starts_with("TLS_CLIENT_CA_FILE is set but TLS_CLIENT_AUTH is none"));
        assert!(
            err("", None, None, ca, ClientAuth::Optional)
                .starts_with("TLS_CLIENT_CA_FILE and TLS_CLIENT_AUTH need TLS")
        );
        let files = TlsFiles::from_settings("", c, k, ca, ClientAuth::Optional).unwrap().unwrap();
        assert_eq!((files.client_ca.as_deref(), files.client_auth), (ca, ClientAuth::Optional));
    }
}
