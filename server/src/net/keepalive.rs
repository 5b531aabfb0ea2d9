//! TCP keepalive: the kernel's own check that the other end of a quiet connection still exists.
//!
//! A TCP connection on which nobody sends anything exchanges no packets at all, so a peer whose host has vanished
//! (powered off, unplugged, gone out of Wi-Fi range) cannot be told from a peer with nothing to say. With the
//! `SO_KEEPALIVE` option the kernel probes such a connection: after [`TCP_KEEPALIVE_IDLE`] without any traffic it
//! sends an empty segment that the peer's kernel must acknowledge, every [`TCP_KEEPALIVE_INTERVAL`] up to
//! [`TCP_KEEPALIVE_PROBES`] times. A host that rebooted answers the first probe with a reset; a host that is gone
//! answers none of them. Either way the connection fails and the next read on it returns the error, which ends
//! the connection task and its session like any other socket error.
//!
//! The defaults are useless for a chat server: Linux waits two hours before the first probe. And keepalive only
//! asks the peer's *kernel*, so a client program that hangs while its machine runs on is never caught by it. That is
//! why the server's first line of defence is the application-level read-idle limit (`conn::idle`, fed by the
//! client's pings); keepalive is the second, and the only one before login and for clients that never send a ping.
//!
//! [`TCP_KEEPALIVE_IDLE`]: crate::limits::TCP_KEEPALIVE_IDLE
//! [`TCP_KEEPALIVE_INTERVAL`]: crate::limits::TCP_KEEPALIVE_INTERVAL
//! [`TCP_KEEPALIVE_PROBES`]: crate::limits::TCP_KEEPALIVE_PROBES

use std::io;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::limits::{TCP_KEEPALIVE_IDLE, TCP_KEEPALIVE_INTERVAL, TCP_KEEPALIVE_PROBES};

/// Switches keepalive on for an accepted connection, with the server's timing.
pub fn enable(stream: &TcpStream) -> io::Result<()> {
    apply(SockRef::from(stream))
}

/// The option itself, on any socket (so that the failure path can be tested on a socket that has no TCP options).
fn apply(socket: SockRef<'_>) -> io::Result<()> {
    let timing = TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&timing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_accepted_connection_gets_the_servers_timing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        enable(&accepted).unwrap();
        let socket = SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        // Reading the timing back is a Linux (and BSD) option; the lab machines run Linux.
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE_IDLE);
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), TCP_KEEPALIVE_INTERVAL);
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), TCP_KEEPALIVE_PROBES);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_without_tcp_options_reports_the_failure() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(apply(SockRef::from(&udp)).is_err());
    }
}
