//! Several listeners in one process (the public API, management, the admin console): each bound
//! from its own setting, so a failure names that setting, and all served by [`serve_tls`] with the
//! same [`Limits`] until one shutdown, which drains them all.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{Limits, Tls, serve_tls};

/// A listener that could not be bound. `Display` is one line naming the setting:
/// `cannot listen on 127.0.0.1:9100 (MANAGEMENT_BIND, the management listener): Address in use`.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({setting}, the {role} listener): {source}")]
pub struct BindError {
    /// The listener's role (`public`, `management`, `console`).
    pub role: &'static str,
    /// The setting that named the address (`BIND`, `MANAGEMENT_BIND`, ...).
    pub setting: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why the operating system refused it.
    #[source]
    pub source: io::Error,
}

/// One bound listener, with its role, the router it serves and its TLS (plain HTTP without).
#[derive(Debug)]
pub struct Listener {
    role: &'static str,
    listener: TcpListener,
    router: Router,
    tls: Option<Tls>,
}

impl Listener {
    /// Binds `addr`, read from `setting`, for the listener of `role` serving `router`.
    pub async fn bind(
        role: &'static str,
        setting: &'static str,
        addr: SocketAddr,
        router: Router,
    ) -> Result<Self, BindError> {
        match TcpListener::bind(addr).await {
            Ok(listener) => Ok(Self { role, listener, router, tls: None }),
            Err(source) => Err(BindError { role, setting, addr, source }),
        }
    }

    /// Wraps an already bound `listener` (tests, embedding code).
    pub fn from_tcp(role: &'static str, listener: TcpListener, router: Router) -> Self {
        Self { role, listener, router, tls: None }
    }

    /// Speaks TLS with `tls` (plain HTTP with `None`). Listeners may share one [`Tls`]; the
    /// caller starts its file watch ([`Tls::watch`]) once.
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// The listener's role.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Serves every listener with the same `limits` (each counts its own connections) until
/// `shutdown` resolves, then lets the open connections of all of them finish (see
/// [`serve_tls`]).
///
/// Logs one `{service} listening` line per listener first, in the order given, with its `role`
/// and `addr` (put the public listener first: tools read the first `addr=`).
pub async fn serve_all(
    service: &str,
    listeners: Vec<Listener>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    for listener in &listeners {
        let tls = listener.tls.as_ref().map(|tls| tls.files().client_auth);
        match tls {
            Some(client_auth) => tracing::info!(
                role = %listener.role, addr = %listener.local_addr()?, tls = true, ?client_auth, "{service} listening"
            ),
            None => tracing::info!(role = %listener.role, addr = %listener.local_addr()?, "{service} listening"),
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut served = JoinSet::new();
    for Listener { listener, router, tls, .. } in listeners {
        let mut stopped = stopped.clone();
        let shutdown = async move {
            // An error means the sender is gone: stopping too.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        // The one place each listener is served; a TLS listener gets its acceptor here.
        served.spawn(serve_tls(listener, router, limits, tls, shutdown));
    }
    let mut result = Ok(());
    tokio::select! {
        () = shutdown => {}
        // `serve` returns only after its shutdown: one ending first stops the others.
        Some(ended) = served.join_next() => result = flatten(ended),
    }
    let _ = stop.send(true);
    while let Some(ended) = served.join_next().await {
        result = result.and(flatten(ended));
    }
    result
}

fn flatten(ended: Result<io::Result<()>, tokio::task::JoinError>) -> io::Result<()> {
    ended.map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::testing::net::read_to_close;

    async fn answer(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut stream, Duration::from_secs(20)).await.expect("answered");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_taken_address_is_an_error_naming_the_setting_and_the_listener() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = Listener::bind("management", "MANAGEMENT_BIND", addr, Router::new()).await.unwrap_err();
        let text = error.to_string();
        let expected = format!("cannot listen on {addr} (MANAGEMENT_BIND, the management listener): ");
        assert!(text.starts_with(&expected), "{text}");
        assert_eq!(
            (error.setting, error.role, error.source.kind()),
            ("MANAGEMENT_BIND", "management", io::ErrorKind::AddrInUse)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_listener_serves_its_router_until_the_one_shutdown_stops_them_all() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let public = Router::new().route("/", get(|| async { "public" }));
        let management = Router::new().route("/", get(|| async { "management" }));
        let listeners = vec![
            Listener::bind("public", "BIND", any, public).await.unwrap(),
            Listener::bind("management", "MANAGEMENT_BIND", any, management).await.unwrap(),
        ];
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve_all("test", listeners, Limits::default(), async move {
            let _ = stopped.await;
        }));
        assert!(answer(addrs[0], "/").await.ends_with("\r\n\r\npublic"));
        assert!(answer(addrs[1], "/").await.ends_with("\r\n\r\nmanagement"));
        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), served).await.expect("serve_all returned");
        ended.unwrap().unwrap();
        for addr in addrs {
            assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "{addr} closed");
        }
    }
}
