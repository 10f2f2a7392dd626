//! The one HTTP listener both service binaries (and the examples) serve through: axum's
//! router on hyper with the limits a slow, silent or greedy client must not get around: a
//! deadline for the request head that runs from the moment a connection is accepted, an idle
//! timeout on the connection, and a cap on open connections in total and per client address.
//! Every request carries the peer's address as [`ConnectInfo`]`<SocketAddr>`.
//!
//! [`serve`] speaks plain HTTP; [`serve_tls`] speaks TLS when given a [`Tls`] (see [`tls`]): the
//! handshake runs inside the head deadline and holds a connection slot like any connection, and
//! a verified client certificate reaches handlers as [`ClientCertificate`]. A binary with
//! several listeners (public, management, console) binds each with [`Listener::bind`], gives it
//! its TLS with [`Listener::with_tls`], and serves them together with [`serve_all`].

mod listeners;
mod slots;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

pub use self::listeners::{BindError, Listener, serve_all};
use self::slots::{Refusal, Slot, Slots};
pub use self::tls::{ClientAuth, ClientCertificate, Reloaded, Tls, TlsError, TlsFiles};

/// TLS handshakes that failed, by `reason`: `timeout` (not done by the head deadline) or `error`
/// (refused by either side: no or an untrusted client certificate, plain HTTP, no common
/// protocol version...).
pub const TLS_HANDSHAKE_FAILURES: &str = "gatehouse_tls_handshake_failures_total";

/// Connections refused at accept and closed at once, by `reason`: `per_ip` (the client's
/// address already held `MAX_CONNECTIONS_PER_IP`) or `total` (`MAX_CONNECTIONS` were open).
pub const CONNECTIONS_REFUSED: &str = "gatehouse_connections_refused_total";

/// Default of [`Limits::header_read_timeout`] (`HEADER_READ_TIMEOUT`).
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// Default of [`Limits::idle_timeout`] (`IDLE_TIMEOUT`).
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// Default of [`Limits::max_connections`] (`MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: &str = "10000";
/// Default of [`Limits::max_connections_per_ip`] (`MAX_CONNECTIONS_PER_IP`).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: &str = "256";

/// Connection limits of a listener: a plain struct for embedding code, and the
/// `HEADER_READ_TIMEOUT`, `IDLE_TIMEOUT`, `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_IP` settings
/// of a binary's command line (`#[command(flatten)]`). Each default is written once, in the
/// `DEFAULT_*` constants above, and read by both [`Limits::default`] and the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Limits {
    /// Longest wait for a complete request head. The first one's clock starts when the
    /// connection is accepted, so a connection that never sends a byte is closed after it
    /// (for HTTP/2 it covers the connection preface and the first request's headers); after
    /// each answer on a kept-alive HTTP/1 connection the clock starts again.
    #[arg(
        long,
        env = "HEADER_READ_TIMEOUT",
        default_value = DEFAULT_HEADER_READ_TIMEOUT,
        value_parser = crate::settings::parse_duration,
        long_help = "Longest wait for a complete request head, counted from the accept (a connection that sends \
                     nothing is closed after it) and again after each answer on a kept-alive connection."
    )]
    pub header_read_timeout: Duration,
    /// A connection on which nothing was read or written for this long is closed (stalled
    /// bodies, clients that stop reading answers, idle HTTP/2 connections).
    #[arg(
        long,
        env = "IDLE_TIMEOUT",
        default_value = DEFAULT_IDLE_TIMEOUT,
        value_parser = crate::settings::parse_duration,
        long_help = "A connection with nothing read or written for this long is closed."
    )]
    pub idle_timeout: Duration,
    /// Connections open at once; further ones are accepted and closed at once.
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        default_value = DEFAULT_MAX_CONNECTIONS,
        long_help = "Connections served at once; more are closed as soon as they are accepted."
    )]
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv4 address, or an IPv6 /64
    /// network), counted by the socket's peer: forwarded headers play no part. Further ones are
    /// accepted and closed at once. A value of `max_connections` or more leaves only the total.
    #[arg(
        long,
        env = "MAX_CONNECTIONS_PER_IP",
        default_value = DEFAULT_MAX_CONNECTIONS_PER_IP,
        long_help = "Connections served at once from one client address (IPv6: one /64), by the socket's peer \
                     (forwarded headers play no part); more are closed as soon as they are accepted."
    )]
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    /// The `DEFAULT_*` constants: 10 s, 60 s, 10,000 connections, 256 per address.
    fn default() -> Self {
        Self {
            header_read_timeout: default_of(DEFAULT_HEADER_READ_TIMEOUT, crate::settings::parse_duration),
            idle_timeout: default_of(DEFAULT_IDLE_TIMEOUT, crate::settings::parse_duration),
            max_connections: default_of(DEFAULT_MAX_CONNECTIONS, str::parse::<usize>),
            max_connections_per_ip: default_of(DEFAULT_MAX_CONNECTIONS_PER_IP, str::parse::<usize>),
        }
    }
}

/// A default read with the parser the command line uses for it (a constant: a test reads
/// each one, so this never fails in a build that passed its tests).
fn default_of<T, E: std::fmt::Debug>(text: &str, parse: impl Fn(&str) -> Result<T, E>) -> T {
    parse(text).unwrap_or_else(|e| panic!("the default {text:?} does not parse: {e:?}"))
}

/// Why listener limits cannot be used. `Display` is one line naming the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// `HEADER_READ_TIMEOUT` or `IDLE_TIMEOUT` is zero.
    #[error("HEADER_READ_TIMEOUT and IDLE_TIMEOUT must be positive")]
    ZeroTimeout,
    /// `MAX_CONNECTIONS` is zero.
    #[error("MAX_CONNECTIONS must be at least 1")]
    NoConnections,
    /// `MAX_CONNECTIONS_PER_IP` is zero.
    #[error("MAX_CONNECTIONS_PER_IP must be at least 1")]
    NoConnectionsPerIp,
}

impl Limits {
    /// Why these limits cannot be used, if so.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(LimitsError::ZeroTimeout);
        }
        if self.max_connections == 0 {
            return Err(LimitsError::NoConnections);
        }
        if self.max_connections_per_ip == 0 {
            return Err(LimitsError::NoConnectionsPerIp);
        }
        Ok(())
    }
}

/// How long open connections get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Least time between two warnings about refused connections (each is counted in
/// [`CONNECTIONS_REFUSED`]; the log only says that it happens).
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections
/// finish (for at most 10 s). Accept errors (out of file descriptors...) are logged and
/// retried after a pause instead of ending the service.
///
/// A connection over [`Limits::max_connections`] or [`Limits::max_connections_per_ip`] is
/// closed as soon as it is accepted and counted in [`CONNECTIONS_REFUSED`]: the listen backlog
/// keeps draining, so an address that holds its share cannot queue up in front of others.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    serve_tls(listener, router, limits, None, shutdown).await
}

/// A request extension [`serve_tls`] (and so [`serve`] and [`serve_all`]) puts on every
/// request: it resolves once the server starts shutting down, so a handler that waits on
/// purpose (a long poll) answers at once instead of holding the shutdown's drain.
#[derive(Debug, Clone)]
pub struct Draining(tokio::sync::watch::Receiver<bool>);

impl Draining {
    /// Resolves when the server that took the request starts shutting down.
    pub async fn started(mut self) {
        // A dropped sender means the server is gone: as good as draining.
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// [`serve`], speaking TLS when `tls` is given (plain HTTP when `None`): each connection's
/// handshake uses the configuration `tls` holds at its accept (so a reloaded certificate serves
/// the next connections while open ones keep theirs), must finish before the head deadline
/// ([`Limits::header_read_timeout`] from the accept), and holds a connection slot from the
/// accept. A failed handshake (plain HTTP on this port too) closes the connection, counted in
/// [`TLS_HANDSHAKE_FAILURES`]. The listener does not watch the files: call [`Tls::watch`] once
/// per loaded [`Tls`] (listeners may share one).
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    // Heads after the first (kept-alive HTTP/1 connections); the first one is timed from the
    // accept in `Connection::serve`, because hyper starts this clock only once it has seen
    // enough bytes to tell HTTP/1 from HTTP/2.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let slots = Slots::new(limits.max_connections.max(1), limits.max_connections_per_ip.max(1));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    let (draining, drain) = tokio::sync::watch::channel(false);
    let router = router.layer(axum::Extension(Draining(drain)));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let head_deadline = Instant::now() + limits.header_read_timeout;
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Counted before the close, so whoever sees the close also sees the count.
                refused(refusal, peer, &limits, &mut last_warning);
                drop(stream);
                continue;
            }
        };
        let acceptor = tls.as_ref().map(Tls::acceptor);
        let connection =
            Connection { builder: builder.clone(), router: router.clone(), limits, peer, head_deadline, acceptor };
        tokio::spawn(connection.serve(stream, slot, graceful.watcher()));
    }
    drop(listener);
    draining.send_replace(true);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// Counts a refused connection, and says so in the log at most every
/// [`REFUSAL_WARNING_EVERY`].
fn refused(refusal: Refusal, peer: SocketAddr, limits: &Limits, last_warning: &mut Option<Instant>) {
    metrics::counter!(CONNECTIONS_REFUSED, "reason" => refusal.label()).increment(1);
    let now = Instant::now();
    if last_warning.is_some_and(|at| now.duration_since(at) < REFUSAL_WARNING_EVERY) {
        tracing::debug!(peer = %peer.ip(), reason = refusal.label(), "connection refused");
        return;
    }
    *last_warning = Some(now);
    match refusal {
        Refusal::PerPeer => tracing::warn!(
            peer = %peer.ip(),
            limit = limits.max_connections_per_ip,
            "connections refused: this client address holds MAX_CONNECTIONS_PER_IP connections \
             (counted in {CONNECTIONS_REFUSED})"
        ),
        Refusal::Total => tracing::warn!(
            limit = limits.max_connections,
            "connections refused: MAX_CONNECTIONS are open (counted in {CONNECTIONS_REFUSED})"
        ),
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    limits: Limits,
    peer: SocketAddr,
    /// When the first request head must have arrived: [`Limits::header_read_timeout`] after
    /// the accept.
    head_deadline: Instant,
    /// The TLS configuration at the accept, on a TLS listener.
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

/// How a connection ended.
enum Ended {
    /// Served until either side closed.
    Served,
    /// Served, ended by an error.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// No complete request head before the deadline.
    NoHead,
    /// The TLS handshake failed.
    Handshake(io::Error),
    /// The TLS handshake was not done before the head deadline.
    HandshakeTimeout,
}

impl Connection {
    /// Serves the connection until it ends, then gives its slot back. Everything between the
    /// accept and the first request (the TLS handshake too, run under
    /// `timeout_at(head_deadline, ..)`) counts against the head deadline: a connection that
    /// sends no complete request by then is closed.
    fn serve(self, stream: TcpStream, slot: Slot, watcher: Watcher) -> impl Future<Output = ()> + use<> {
        let _ = stream.set_nodelay(true);
        let peer = self.peer;
        async move {
            let io = IdleIo::new(stream, self.limits.idle_timeout);
            let ended = match self.acceptor.clone() {
                None => self.run(io, None, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(self.head_deadline, acceptor.accept(io).into_fallible()).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|leaf| ClientCertificate::from_der(leaf.clone().into_owned()));
                            self.run(stream, certificate, watcher).await
                        }
                        Ok(Err((e, io))) => {
                            close_after_alert(io, self.head_deadline).await;
                            Ended::Handshake(e)
                        }
                        Err(_) => Ended::HandshakeTimeout,
                    }
                }
            };
            // The socket is closed by now (the connection was dropped with its future).
            drop(slot);
            match ended {
                Ended::Served => {}
                Ended::NoHead => tracing::debug!(%peer, "no request head before the deadline; connection closed"),
                Ended::Failed(e) => tracing::debug!(error = %e, %peer, "connection ended with an error"),
                Ended::Handshake(e) => {
                    metrics::counter!(TLS_HANDSHAKE_FAILURES, "reason" => "error").increment(1);
                    tracing::debug!(error = %e, %peer, "TLS handshake failed; connection closed");
                }
                Ended::HandshakeTimeout => {
                    metrics::counter!(TLS_HANDSHAKE_FAILURES, "reason" => "timeout").increment(1);
                    tracing::debug!(%peer, "no TLS handshake before the head deadline; connection closed");
                }
            }
        }
    }

    /// Serves HTTP on `io` (plain or after the handshake) until the connection ends.
    async fn run<I>(self, io: I, certificate: Option<ClientCertificate>, watcher: Watcher) -> Ended
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self { builder, router, peer, head_deadline, .. } = self;
        // Set by the first request the service sees: its head (HTTP/1) or headers (HTTP/2)
        // arrived.
        let requested = Arc::new(AtomicBool::new(false));
        let seen = requested.clone();
        let service = router.map_request(move |mut req: Request<Incoming>| {
            if !seen.load(Ordering::Relaxed) {
                seen.store(true, Ordering::Relaxed);
            }
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            if let Some(certificate) = &certificate {
                req.extensions_mut().insert(certificate.clone());
            }
            req
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = watcher.watch(conn.into_owned());
        let mut conn = std::pin::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => Some(ended),
            () = tokio::time::sleep_until(head_deadline) => {
                if requested.load(Ordering::Relaxed) { Some(conn.await) } else { None }
            }
        };
        match ended {
            None => Ended::NoHead,
            Some(Ok(())) => Ended::Served,
            Some(Err(e)) => Ended::Failed(e),
        }
    }
}

/// Closes a connection whose TLS handshake failed so that the client reads the alert that
/// says why. Under TLS 1.3 a client sends its first request as soon as its side of the
/// handshake is done, before the server has checked its certificate; closing a socket with
/// that request unread makes the kernel answer with a reset, which can reach the client before
/// the alert (it then sees "connection reset", not "certificate required"). So: end the
/// sending side after the alert, and read and drop what the client still sends until it
/// closes, for at most a second (and never past the head deadline) and 64 KiB.
async fn close_after_alert<I>(mut io: I, head_deadline: Instant)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = head_deadline.min(Instant::now() + Duration::from_secs(1));
    let drain = async {
        io.shutdown().await?;
        let mut buffer = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match io.read(&mut buffer).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout_at(deadline, drain).await;
}

/// A stream that fails with `TimedOut` once nothing was read or written for `timeout` while
/// the server waits on it.
struct IdleIo<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        Self { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::testing::net::read_to_close;

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        limits: Limits,
    }

    #[test]
    fn the_defaults_are_the_same_in_code_and_on_the_command_line() {
        use clap::Parser;
        let limits = Limits::default();
        let expected = (Duration::from_secs(10), Duration::from_secs(60), 10_000, 256);
        assert_eq!(
            (limits.header_read_timeout, limits.idle_timeout, limits.max_connections, limits.max_connections_per_ip),
            expected
        );
        // Nothing set in the environment of this test: the command line's defaults.
        let parsed = Command::try_parse_from(["x"]).unwrap().limits;
        assert_eq!(parsed, limits, "Limits::default() and the command line's defaults");
        let parsed = Command::try_parse_from(["x", "--idle-timeout", "5s", "--max-connections-per-ip", "1"]).unwrap();
        assert_eq!((parsed.limits.idle_timeout, parsed.limits.max_connections_per_ip), (Duration::from_secs(5), 1));
    }

    #[test]
    fn unusable_limits_are_typed_errors_naming_the_setting() {
        let zero = Limits { idle_timeout: Duration::ZERO, ..Limits::default() };
        assert_eq!(zero.validate(), Err(LimitsError::ZeroTimeout));
        assert_eq!(zero.validate().unwrap_err().to_string(), "HEADER_READ_TIMEOUT and IDLE_TIMEOUT must be positive");
        let none = Limits { max_connections: 0, ..Limits::default() };
        assert_eq!(none.validate().unwrap_err().to_string(), "MAX_CONNECTIONS must be at least 1");
        let none = Limits { max_connections_per_ip: 0, ..Limits::default() };
        assert_eq!(none.validate().unwrap_err().to_string(), "MAX_CONNECTIONS_PER_IP must be at least 1");
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() })
                .post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_head_that_never_ends_is_cut_off() {
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // Well beyond the deadline, but far below the 60 s idle timeout: the header deadline closed it.
        assert!(read_to_close(&mut slow, Duration::from_secs(20)).await.is_some(), "slow client still connected");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stalled_connection_is_closed_after_the_idle_timeout() {
        let limits = Limits { idle_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A complete head announcing a body that never comes.
        stalled.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n").await.unwrap();
        let answer =
            read_to_close(&mut stalled, Duration::from_secs(20)).await.expect("stalled client still connected");
        assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "the handler never ran");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn connections_over_the_cap_are_closed_at_once_and_a_freed_slot_serves_again() {
        let limits = Limits { max_connections: 1, ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        first.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // The kernel completes the handshake; the server accepts, finds no slot and closes.
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let refused = read_to_close(&mut second, Duration::from_secs(5)).await;
        assert_eq!(refused.as_deref(), Some(&b""[..]), "closed without an answer while the only slot is held");
        drop(first);
        // Once the server has seen the first one go, its slot serves the next connection.
        let mut text = String::new();
        for _ in 0..100 {
            let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
            let answer = read_to_close(&mut next, Duration::from_secs(20)).await.expect("answered or closed");
            text = String::from_utf8_lossy(&answer).into_owned();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("127.0.0.1"), "the handler sees the peer address: {text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_connection_that_never_sends_a_byte_is_closed_after_the_head_deadline() {
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Far below the 60 s idle timeout: the head deadline, counted from the accept, closed it.
        assert_eq!(
            read_to_close(&mut silent, Duration::from_secs(20)).await.as_deref(),
            Some(&b""[..]),
            "silent client still connected"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_connection_that_stops_inside_the_http2_preface_is_closed_after_the_head_deadline() {
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        for sent in [&b"PRI * HTTP/2.0\r\n"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
            let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
            stalled.write_all(sent).await.unwrap();
            assert!(
                read_to_close(&mut stalled, Duration::from_secs(20)).await.is_some(),
                "still connected after {:?}",
                String::from_utf8_lossy(sent)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_kept_alive_connection_is_closed_when_no_next_request_comes() {
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = start(limits).await;
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let answer =
            read_to_close(&mut kept, Duration::from_secs(20)).await.expect("kept-alive client still connected");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "answered first: {text}");
    }
}
