//! The one state every handler, service function and background task shares: the store, the
//! signing keys, the password hasher, the throttle and the settings, built once from
//! [`Settings`] by [`AppState::build`].

use std::sync::Arc;

use shared_user::settings::SettingError;
use shared_user::{Db, VerifySettings};

use crate::factors::SecretSealer;
use crate::form_key::FormKey;
use crate::kek::KeyError;
use crate::keys;
use crate::passwords::{Hasher, HasherError};
use crate::settings::Settings;
use crate::store::Store;
use crate::throttle::{self, Throttle};
use crate::tokens::Keys;

/// The one state type of the service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Users and refresh-token records.
    pub store: Store,
    /// Signing and verification keys.
    pub keys: Arc<Keys>,
    /// Password hashing pool.
    pub hasher: Hasher,
    /// The settings, checked and normalized ([`Settings::checked`]).
    pub settings: Arc<Settings>,
    /// Brute-force protection on obtain.
    pub throttle: Arc<Throttle>,
    /// Signs the admin console's sign-in form tokens.
    pub console_form_key: FormKey,
    /// Seals TOTP secrets at rest.
    pub sealer: SecretSealer,
    /// The WebAuthn relying party of `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGIN` (`None`: passkeys
    /// are off).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

/// Why [`AppState::build`] could not build the state. The message is the one line the binary
/// prints before it exits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid: the message names it and says what to set instead.
    #[error(transparent)]
    Settings(#[from] SettingError),
    /// The asymmetric signing keys could not be loaded, generated or unsealed (an unreachable
    /// database, a wrong `KEY_ENCRYPTION_KEY`, a stored key that does not parse).
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The password hashing threads could not start.
    #[error(transparent)]
    Hashing(#[from] HasherError),
}

impl AppState {
    /// Builds the state from `settings` over a connected, migrated database, for every
    /// algorithm: the settings are checked first; with an asymmetric ALGORITHM the signing
    /// keys are loaded from the database (the first one is generated).
    pub async fn build(settings: Settings, db: Db) -> Result<Self, BuildError> {
        let settings = settings.checked()?;
        let verify = VerifySettings {
            algorithms: vec![settings.algorithm],
            leeway: settings.leeway,
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            user_id_claim: settings.user_id_claim.clone(),
        };
        let (access, refresh) = (settings.access_token_lifetime, settings.refresh_token_lifetime);
        let kek = settings.key_encryption_key()?;
        let hmac_secret = if settings.is_asymmetric() { None } else { Some(settings.resolve_signing_key()?) };
        // The console's form key comes from a secret every replica shares.
        let console_form_key = match (&hmac_secret, &kek) {
            (Some(secret), _) => FormKey::derive(secret),
            (None, Some(kek)) => FormKey::derive(kek.secret()),
            (None, None) => FormKey::random(),
        };
        // Second-factor secrets are sealed under the same shared secret.
        let sealer = SecretSealer::derive(hmac_secret.as_deref().or(kek.as_ref().map(|k| k.secret())));
        let keys = match hmac_secret {
            None => {
                let rows = keys::ensure_current(&Store::new(db.clone()), settings.algorithm, kek.as_ref()).await?;
                Keys::from_rows(&rows, verify, access, refresh, keys::rotation::Policy::of(&settings).keep_retired)?
            }
            Some(secret) => Keys::hmac(&secret, verify, access, refresh)
                .accepting_previous(&secret, &settings.resolve_previous_signing_keys()?),
        };
        let webauthn = settings.webauthn()?.map(Arc::new);
        let hasher = Hasher::new(settings.hashing, settings.hash_concurrency)?;
        let signup = (settings.signup_throttle_per_hour > 0)
            .then(|| throttle::signups_per_hour(settings.signup_throttle_per_hour));
        let throttle = Throttle {
            enabled: settings.login_throttle,
            signup,
            failure_floor: settings.login_failure_min_time,
            ..Throttle::default()
        };
        Ok(Self {
            store: Store::new(db),
            keys: Arc::new(keys),
            hasher,
            settings: Arc::new(settings),
            throttle: Arc::new(throttle),
            console_form_key,
            sealer,
            webauthn,
        })
    }
}
