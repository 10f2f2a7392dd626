//! The audit trail: what happened to accounts and sessions, by whom, from where.
//!
//! Every event is a row of `audit_events` (written in the same transaction as the change it
//! records, where there is one) and one structured log line on the `audit` target, written
//! after the row is committed. No event carries a secret: no password, hash or token, and no
//! email typed at a failed login (users type passwords into that field).
//!
//! The client address and user agent of the request being served are captured once per request
//! by `CaptureRequestMeta` (a layer `crate::app::app` adds) in a task-local, so the service
//! functions that record events need no extra parameters; outside a request (the CLI) they are
//! empty.

use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::client_ip::ClientIp;

/// Longest user agent kept (longer ones are cut at a character boundary).
const MAX_USER_AGENT: usize = 256;

/// The kinds of audit events (DESIGN.md, "Running a fleet").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A login issued a token pair.
    LoginSucceeded,
    /// Wrong email or password (or an inactive account).
    LoginFailed,
    /// A login was refused by the brute-force protection.
    Throttled,
    /// A rotated refresh token came back after the grace window: its family was revoked.
    RefreshReuseDetected,
    /// The password was changed (every session ended).
    PasswordChanged,
    /// One session (refresh-token family) was ended: `DELETE /auth/sessions/{id}/`, logout.
    SessionRevoked,
    /// Every session ended and every earlier access token refused.
    LogoutAll,
    /// A user was created.
    UserCreated,
    /// A user was changed (staff flag, groups, deactivation).
    UserUpdated,
    /// A signing key was staged or promoted.
    KeyRotated,
    /// A second factor (TOTP, a passkey) was enrolled.
    MfaEnrolled,
    /// A second factor was removed by its owner.
    MfaRemoved,
    /// A wrong second factor (code or passkey) at a login or a removal.
    MfaFailed,
    /// A superuser removed every second factor of an account.
    MfaReset,
}

impl AuditKind {
    /// Every kind, in documentation order.
    pub const ALL: [AuditKind; 14] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::Throttled,
        AuditKind::RefreshReuseDetected,
        AuditKind::PasswordChanged,
        AuditKind::SessionRevoked,
        AuditKind::LogoutAll,
        AuditKind::UserCreated,
        AuditKind::UserUpdated,
        AuditKind::KeyRotated,
        AuditKind::MfaEnrolled,
        AuditKind::MfaRemoved,
        AuditKind::MfaFailed,
        AuditKind::MfaReset,
    ];

    /// The stored and logged name (`login_succeeded`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Throttled => "throttled",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::LogoutAll => "logout_all",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserUpdated => "user_updated",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::MfaEnrolled => "mfa_enrolled",
            AuditKind::MfaRemoved => "mfa_removed",
            AuditKind::MfaFailed => "mfa_failed",
            AuditKind::MfaReset => "mfa_reset",
        }
    }
}

impl std::str::FromStr for AuditKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown audit event kind {s:?}; one of {}", names.join(", "))
        })
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// The account it happened to.
    pub user_id: Option<i64>,
    /// Who did it (the user themself, an admin; none for the CLI or an anonymous caller).
    pub actor_id: Option<i64>,
    /// Client address of the request.
    pub ip: Option<String>,
    /// User agent of the request.
    pub user_agent: Option<String>,
    /// Extra facts (JSON object text, never a secret), e.g. how many tokens were revoked.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` with the client address and user agent of the current request.
    pub fn new(kind: AuditKind) -> Self {
        let meta = request_meta();
        Self {
            kind,
            user_id: None,
            actor_id: None,
            ip: meta.ip.map(|ip| ip.to_string()),
            user_agent: meta.user_agent,
            detail: None,
        }
    }

    /// Same, about `user_id`.
    pub fn user(mut self, user_id: i64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Same, done by `actor_id`.
    pub fn actor(mut self, actor_id: i64) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    /// Same, with extra facts.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Same, with `key` set to `value` in the detail object, the caller's other keys kept
    /// (a detail that is not a JSON object becomes one).
    pub fn with_detail(&self, key: &str, value: serde_json::Value) -> Self {
        let mut detail = self
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(d).ok())
            .unwrap_or_default();
        detail.insert(key.to_owned(), value);
        Self { detail: Some(serde_json::Value::Object(detail).to_string()), ..self.clone() }
    }

    /// The one log line of the event (call once the row is committed).
    pub fn log(&self) {
        tracing::info!(
            target: "audit",
            kind = self.kind.as_str(),
            user_id = self.user_id,
            actor_id = self.actor_id,
            ip = self.ip.as_deref(),
            user_agent = self.user_agent.as_deref(),
            detail = self.detail.as_deref(),
            "audit event"
        );
    }
}

/// How often a `throttled` event is recorded per client address (per replica).
const THROTTLED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Most addresses remembered for that; past it the memory starts over.
const THROTTLED_KEYS: usize = 10_000;

/// Whether a refused attempt on `email` from `ip` should be recorded as a `throttled` event:
/// the first one, then at most one per minute per client address on this replica, whatever
/// emails it sends (a caller without an address is keyed on the email). A locked address
/// refuses requests cheaply; writing a row for each, or for each email it tries, would hand
/// the attacker a write amplifier, so the trail says "throttled, and again a minute later"
/// instead.
pub fn should_record_throttled(email: &str, ip: Option<IpAddr>) -> bool {
    static SEEN: std::sync::Mutex<Option<ThrottledSeen>> = std::sync::Mutex::new(None);
    let key = match ip {
        // An IPv6 caller is one /64, as the throttle counts it.
        Some(ip) => crate::client_ip::counted_address(ip).to_string(),
        None => format!("email:{}", email.trim().to_lowercase()),
    };
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.get_or_insert_with(|| ThrottledSeen::new(THROTTLED_EVERY, THROTTLED_KEYS))
        .should_record(key, std::time::Instant::now())
}

/// When each key (a client address, or an email without one) last had a `throttled` event recorded.
#[derive(Debug)]
struct ThrottledSeen {
    at: std::collections::HashMap<String, std::time::Instant>,
    every: std::time::Duration,
    max_keys: usize,
}

impl ThrottledSeen {
    fn new(every: std::time::Duration, max_keys: usize) -> Self {
        Self { at: std::collections::HashMap::new(), every, max_keys }
    }

    /// Whether `key` is due a record at `now` (and remembers that it got one).
    fn should_record(&mut self, key: String, now: std::time::Instant) -> bool {
        if self.at.get(&key).is_some_and(|at| now.duration_since(*at) < self.every) {
            return false;
        }
        if self.at.len() >= self.max_keys {
            self.at.clear();
        }
        self.at.insert(key, now);
        true
    }
}

/// Who is calling: captured once per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// Client address (see [`ClientIp`]).
    pub ip: Option<IpAddr>,
    /// `User-Agent`, cut to 256 bytes.
    pub user_agent: Option<String>,
}

/// What [`CaptureRequestMeta`] keeps for the request: the address, and a copy of the user
/// agent as it came, turned into a [`RequestMeta`] only when an event asks for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured {
    ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
}

tokio::task_local! {
    static REQUEST_META: Captured;
}

/// The caller of the request being served (empty outside a request).
pub fn request_meta() -> RequestMeta {
    REQUEST_META
        .try_with(|captured| RequestMeta {
            ip: captured.ip,
            user_agent: captured
                .user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(|v| cut(v.trim(), MAX_USER_AGENT))
                .filter(|v| !v.is_empty()),
        })
        .unwrap_or_default()
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Layer: records the caller's address ([`ClientIp`]) and user agent for the rest of the
/// request, read by [`request_meta`]. Hand-written rather than `from_fn`, which clones the
/// whole inner layer stack and boxes twice on every request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CaptureRequestMeta;

impl<S> Layer<S> for CaptureRequestMeta {
    type Service = CapturingRequestMeta<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CapturingRequestMeta { inner }
    }
}

/// The service of [`CaptureRequestMeta`].
#[derive(Debug, Clone)]
pub(crate) struct CapturingRequestMeta<S> {
    inner: S,
}

impl<S> Service<Request> for CapturingRequestMeta<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TaskLocalFuture<Captured, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let ClientIp(ip) = ClientIp::of(request.extensions(), request.headers());
        // A copy, not a clone: a clone shares the connection's read buffer, which would stay
        // allocated beside hyper's next one for as long as the request lasts (a long poll of the
        // revocation feed waits up to a minute).
        let user_agent =
            request.headers().get(header::USER_AGENT).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
        let captured = Captured { ip, user_agent };
        // The inner call only builds its future; the handler runs when it is polled, in scope.
        let answer = REQUEST_META.sync_scope(captured.clone(), || self.inner.call(request));
        REQUEST_META.scope(captured, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_is_explained() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>(), Ok(kind));
        }
        let e = "login".parse::<AuditKind>().unwrap_err();
        assert!(e.contains("login_succeeded"), "{e}");
    }

    #[test]
    fn user_agent_is_cut_on_a_char_boundary() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 256), "abc");
    }

    #[test]
    fn throttled_events_are_recorded_once_a_minute_per_address_whatever_the_email() {
        let ip: Option<IpAddr> = "127.0.0.9".parse().ok();
        assert!(should_record_throttled("Once@example.com", ip));
        assert!(!should_record_throttled("once@example.com", ip), "same address within the minute");
        assert!(!should_record_throttled("other@example.com", ip), "another email from that address");
        assert!(should_record_throttled("once@example.com", "127.0.0.10".parse().ok()), "another address");
        assert!(should_record_throttled("once@example.com", None), "no address: keyed on the email");
        assert!(!should_record_throttled("ONCE@example.com", None), "that email again");
    }

    #[test]
    fn a_throttled_pair_is_recorded_again_once_the_minute_is_over() {
        let mut seen = ThrottledSeen::new(THROTTLED_EVERY, THROTTLED_KEYS);
        let start = std::time::Instant::now();
        assert!(seen.should_record("a|127.0.0.1".into(), start));
        let just_before = start + THROTTLED_EVERY - std::time::Duration::from_millis(1);
        assert!(!seen.should_record("a|127.0.0.1".into(), just_before), "within the minute");
        assert!(seen.should_record("a|127.0.0.1".into(), start + THROTTLED_EVERY), "a minute later");
        let later = start + THROTTLED_EVERY + std::time::Duration::from_secs(1);
        assert!(!seen.should_record("a|127.0.0.1".into(), later), "the minute starts again from the new record");
    }

    #[test]
    fn the_memory_of_throttled_pairs_starts_over_when_full() {
        let mut seen = ThrottledSeen::new(THROTTLED_EVERY, 3);
        let now = std::time::Instant::now();
        for key in ["a", "b", "c"] {
            assert!(seen.should_record(key.into(), now), "{key}");
        }
        assert!(!seen.should_record("a".into(), now), "remembered while there is room");
        // A fourth pair: the memory is full, so it starts over with only that pair in it.
        assert!(seen.should_record("d".into(), now));
        assert_eq!(seen.at.len(), 1, "{:?}", seen.at);
        assert!(seen.should_record("a".into(), now), "forgotten with the reset");
        assert!(!seen.should_record("d".into(), now), "the pair that came with the reset is remembered");
    }

    #[test]
    fn a_detail_added_keeps_the_callers_keys() {
        let event = AuditEvent::new(AuditKind::UserUpdated).detail(serde_json::json!({"is_active": false}));
        let merged = event.with_detail("refresh_tokens_revoked", 2.into());
        assert_eq!(merged.detail.as_deref(), Some(r#"{"is_active":false,"refresh_tokens_revoked":2}"#));
        let bare = AuditEvent::new(AuditKind::LogoutAll).with_detail("refresh_tokens_revoked", 0.into());
        assert_eq!(bare.detail.as_deref(), Some(r#"{"refresh_tokens_revoked":0}"#));
        assert_eq!(bare.kind, AuditKind::LogoutAll);
    }

    #[test]
    fn outside_a_request_the_meta_is_empty() {
        assert_eq!(request_meta(), RequestMeta::default());
        assert_eq!(AuditEvent::new(AuditKind::KeyRotated).ip, None);
    }
}
