//! Asking the Linux kernel how a TCP connection is doing (`getsockopt(TCP_INFO)`).
//!
//! TCP's acknowledgements, RTT estimate and retransmissions happen inside the kernel, out of sight of the program.
//! Linux exposes them per socket through the `TCP_INFO` option: `getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len)`
//! fills a `struct tcp_info` with, among many figures, the smoothed RTT (`tcpi_rtt`), its variance, the current
//! retransmission timeout and the count of retransmitted segments. Those are exactly the numbers a lab puts beside
//! the UDP engine's own, so the class can see TCP's 200 ms minimum RTO at work under loss.
//!
//! This is the one place in the client that needs `unsafe`: a call into the C library with a pointer to a struct the
//! kernel writes. Everything around it is checked: the struct starts zeroed (all-zero is a valid `tcp_info`), its
//! size is passed in so the kernel never writes past it, and a failure of the call becomes `None`.

use crate::stats::KernelTcpInfo;

/// The kernel's figures for the TCP socket `fd`, or `None` when the call fails (a closed socket, not TCP).
#[cfg(target_os = "linux")]
pub fn kernel_tcp_info(fd: std::os::fd::RawFd) -> Option<KernelTcpInfo> {
    // SAFETY: `tcp_info` is a plain C struct of integers, for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: `info` is a live, writable `tcp_info` and `len` holds its exact size, so the kernel writes at most
    // `len` bytes into it and stores the number it wrote back into `len`. An invalid `fd` makes the call fail with
    // EBADF rather than touch memory.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(KernelTcpInfo {
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        rto_us: info.tcpi_rto,
        retransmits: info.tcpi_retransmits,
        total_retrans: info.tcpi_total_retrans,
        lost: info.tcpi_lost,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_live_loopback_connection_reports_figures() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).expect("read");
        let info = kernel_tcp_info(client.as_raw_fd()).expect("TCP_INFO on a TCP socket");
        // Linux never lets the RTO go below 200 ms: the floor chatlab's own engine avoids.
        assert!(info.rto_us >= 200_000, "{info:?}");
    }

    #[test]
    fn a_non_tcp_descriptor_gives_none() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert_eq!(kernel_tcp_info(udp.as_raw_fd()), None);
        assert_eq!(kernel_tcp_info(-1), None);
    }
}
