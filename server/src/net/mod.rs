//! Sockets and addresses: binding TCP and UDP to one port, finding the addresses students should type, and the
//! kernel's keepalive on accepted connections.

pub mod bind;
pub mod keepalive;
pub mod lan;
