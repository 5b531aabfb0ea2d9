//! Sockets and addresses: binding TCP and UDP to one port, finding the addresses students should type, the
//! kernel's keepalive on accepted connections, how many connections the open-file limit allows, and which network an
//! address belongs to for the per-address limits.

pub mod bind;
pub mod fd_limit;
pub mod keepalive;
pub mod lan;
pub mod network;
