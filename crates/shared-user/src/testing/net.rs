//! Raw sockets for listener tests: connections from a chosen loopback address (the whole
//! 127.0.0.0/8 is local, so one test can be many callers) and reading until the server closes.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `addr` from the loopback address `127.0.0.<host>`.
pub async fn connect_from(host: u8, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0))).expect("a loopback address");
    socket.connect(addr).await.expect("the server accepts")
}

/// Reads until the peer closes; `None` when it did not within `within` (a hung test must fail).
pub async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(out)
}
