//! Brute-force protection on token obtain. Failures are counted in the database (shared by all
//! replicas) under three keys: the client IP, the account from that IP, and the account alone.
//! The account-wide limit is high and its lock short, so an attacker spraying one account from
//! many addresses slows it down without locking its owner out for long; the owner's own address
//! has its own counter.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use shared_user::user::now_utc;

use crate::error::ApiError;
use crate::store::Store;
use crate::store::throttle::Limit;

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when the service
/// is configured to trust its proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// Marker put in request extensions when `X-Forwarded-For` may be trusted.
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor;

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<TrustForwardedFor>().is_some() {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return Ok(ClientIp(forwarded));
            }
        }
        Ok(ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// Limits for the three counters.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Off: nothing is counted.
    pub enabled: bool,
    /// Per client IP.
    pub ip: Limit,
    /// Per account from one IP.
    pub account_ip: Limit,
    /// Per account from anywhere.
    pub account: Limit,
}

impl Default for Throttle {
    fn default() -> Self {
        let minutes = chrono::Duration::minutes;
        let seconds = chrono::Duration::seconds;
        Self {
            enabled: true,
            ip: Limit { threshold: 20, base_lock: seconds(1), max_lock: minutes(15), window: minutes(15) },
            account_ip: Limit { threshold: 5, base_lock: seconds(1), max_lock: minutes(15), window: minutes(15) },
            account: Limit { threshold: 50, base_lock: seconds(1), max_lock: seconds(60), window: minutes(15) },
        }
    }
}

struct Keys {
    ip: Option<String>,
    account_ip: String,
    account: String,
}

fn keys(email: &str, ip: Option<IpAddr>) -> Keys {
    let email = email.trim().to_lowercase();
    let ip_text = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    Keys {
        ip: ip.map(|i| format!("ip:{i}")),
        account_ip: format!("acct-ip:{ip_text}:{email}"),
        account: format!("acct:{email}"),
    }
}

impl Throttle {
    /// `Err(429)` with the seconds to wait when any counter of this attempt is locked.
    pub async fn check(&self, store: &Store, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let k = keys(email, ip);
        let mut all = vec![k.account_ip, k.account];
        all.extend(k.ip);
        let now = now_utc();
        if let Some(until) = store.throttle_locked_until(&all, now).await? {
            let secs = ((until - now).num_milliseconds().max(0) + 999) / 1000;
            let secs = secs.max(1);
            metrics::counter!("gatehouse_throttled_total").increment(1);
            return Err(ApiError::Throttled(u64::try_from(secs).unwrap_or(1)));
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub async fn failed(&self, store: &Store, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let k = keys(email, ip);
        let now = now_utc();
        if let Some(ip_key) = &k.ip {
            store.throttle_fail(ip_key, self.ip, now).await?;
        }
        store.throttle_fail(&k.account_ip, self.account_ip, now).await?;
        store.throttle_fail(&k.account, self.account, now).await?;
        Ok(())
    }

    /// Clears the account counters after a successful login.
    pub async fn succeeded(&self, store: &Store, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let k = keys(email, ip);
        store.throttle_clear(&[k.account_ip, k.account]).await?;
        Ok(())
    }
}
