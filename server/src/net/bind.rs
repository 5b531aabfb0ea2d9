//! One port number for both transports.
//!
//! chatlab's control channel (TCP) and chat datagrams (UDP) share one port number, so students type one address.
//! TCP and UDP ports are separate name spaces in the kernel: binding TCP port 7878 says nothing about UDP port 7878,
//! which another program may hold. So [`bind`] binds TCP first and then UDP on the port TCP got; when the caller
//! asked for port 0 ("any free port", as tests do) and that UDP port happens to be taken, it simply tries again with
//! a new TCP port.
//!
//! ## SO_REUSEADDR
//!
//! When a server closes a TCP connection first, the kernel keeps the connection's port pair in `TIME_WAIT` for a
//! minute or two, so that late packets of the old connection cannot be mistaken for a new one. Without
//! `SO_REUSEADDR`, a restarted server cannot bind its port while any such entry exists ("address already in use"),
//! which is exactly when a teacher restarts it. With the option set the bind succeeds; two servers still cannot
//! *listen* on one port at the same time on Linux, so the option hides no mistake.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use crate::error::ServerError;
use crate::limits::{BIND_ATTEMPTS, LISTEN_BACKLOG};

/// Binds a TCP listener and a UDP socket to the same address and port. With port 0 the kernel chooses the port
/// (retrying a few times if that UDP port is taken); otherwise both use `addr`'s port or the call fails.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, UdpSocket), ServerError> {
    let bind_error = |source: io::Error| ServerError::Bind { addr: addr.to_string(), source };
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let listener = listen_tcp(addr).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        match UdpSocket::bind(local).await {
            Ok(udp) => return Ok((listener, udp)),
            Err(error) if addr.port() == 0 && error.kind() == io::ErrorKind::AddrInUse => {
                tracing::debug!(%local, "UDP port taken; trying another port pair");
                last_error = Some(error);
            }
            Err(error) => return Err(bind_error(error)),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse))))
}

fn listen_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn tcp_and_udp_share_the_port() {
        let (tcp, udp) = bind(loopback_any_port()).await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(udp.local_addr().unwrap().port(), port);
    }

    #[tokio::test]
    async fn a_taken_udp_port_is_an_error_for_a_fixed_port() {
        let squatter = UdpSocket::bind(loopback_any_port()).await.unwrap();
        let addr = squatter.local_addr().unwrap();
        // The TCP port of the same number is very likely free; the UDP one is not.
        match bind(addr).await {
            Err(ServerError::Bind { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::AddrInUse),
            Ok(_) => panic!("bound a UDP port that is taken"),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[tokio::test]
    async fn restart_binds_at_once_after_the_server_closed_connections() {
        let (tcp, udp) = bind(loopback_any_port()).await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = tcp.accept().await.unwrap();
        // The server closes first, so its side of the connection goes to TIME_WAIT.
        drop(server_side);
        drop(tcp);
        drop(udp);
        drop(client);
        let (tcp, _udp) = bind(addr).await.unwrap();
        assert_eq!(tcp.local_addr().unwrap(), addr);
    }
}
