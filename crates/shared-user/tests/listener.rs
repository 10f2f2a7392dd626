//! The listener (`shared_user::server::serve`) against clients run as an attacker runs them, on
//! real sockets from several loopback addresses: silent connections up to the per-address limit
//! from one address, more beyond it, other addresses filling the rest, and an honest client.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use shared_user::server::{CONNECTIONS_REFUSED, Limits, serve};
use shared_user::testing::net::{connect_from, read_to_close};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves a router answering `GET /` with the caller's address until the sender is dropped.
async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Whether the server still holds `stream` open (nothing to read, no end of stream).
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// `GET /` from `127.0.0.<host>` on a kept-alive connection: the connection, still open, and
/// the answer (read up to the end of its body, the caller's address).
async fn get_from(host: u8, addr: SocketAddr) -> (TcpStream, String) {
    let mut stream = connect_from(host, addr).await;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let body = format!("\r\n\r\n127.0.0.{host}");
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        while !answer.ends_with(body.as_bytes()) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to 127.0.0.{host}");
    (stream, String::from_utf8_lossy(&answer).into_owned())
}

/// The refused-connections counter of `reason` in the Prometheus text (0 before the first).
fn refused(reason: &str) -> u64 {
    let text = shared_user::ops::metrics::install().render();
    let series = format!("{CONNECTIONS_REFUSED}{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_from_one_address_neither_starve_others_nor_outlive_the_head_deadline() {
    shared_user::ops::metrics::install();
    const PER_IP: usize = 8;
    let limits = Limits {
        // Long enough for the steps below on a busy machine, far below the idle timeout.
        header_read_timeout: Duration::from_secs(4),
        idle_timeout: Duration::from_secs(120),
        max_connections: PER_IP + 3,
        max_connections_per_ip: PER_IP,
    };
    let (addr, _stop) = start(limits).await;
    let (per_ip_before, total_before) = (refused("per_ip"), refused("total"));

    // One address takes its whole share with connections that never send a byte...
    let mut silent = Vec::new();
    for _ in 0..PER_IP {
        silent.push(connect_from(2, addr).await);
    }
    // ...and gets no more: each further one is closed unanswered, and counted.
    for _ in 0..3 {
        let mut extra = connect_from(2, addr).await;
        let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let answer = read_to_close(&mut extra, Duration::from_secs(20)).await.expect("refused connection closed");
        assert!(answer.is_empty(), "refused, not served: {}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(refused("per_ip") - per_ip_before, 3, "every refusal is counted");

    // Another address is served at once, while the silent ones still hold their slots.
    let (kept, answer) = get_from(3, addr).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n127.0.0.3"), "{answer}");
    assert!(silent.iter().all(still_open), "the silent connections were still open");

    // Two more addresses take the last slots; past MAX_CONNECTIONS everyone is refused.
    let mut others = [kept, connect_from(4, addr).await, connect_from(5, addr).await];
    let mut over = connect_from(6, addr).await;
    assert_eq!(read_to_close(&mut over, Duration::from_secs(20)).await.as_deref(), Some(&b""[..]));
    assert_eq!(refused("total") - total_before, 1, "the refusal at the total is counted as such");

    // The head deadline runs from the accept (and again after an answer): the server closes
    // every connection that sends no request.
    for stream in silent.iter_mut().chain(others.iter_mut()) {
        let rest =
            read_to_close(stream, Duration::from_secs(60)).await.expect("a silent connection outlived the deadline");
        assert!(rest.is_empty(), "closed without an answer");
    }
    // Their slots are free again (once the server has seen them go).
    let mut answer = String::new();
    for _ in 0..100 {
        answer = get_from(2, addr).await.1;
        if !answer.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("127.0.0.2"), "{answer}");
}
