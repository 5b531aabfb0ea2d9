//! Sockets and addresses: binding TCP and UDP to one port, and finding the addresses students should type.

pub mod bind;
pub mod lan;
