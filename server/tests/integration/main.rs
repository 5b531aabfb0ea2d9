//! Integration tests of the chatlab server: a real server (`chatlab_server::run`, or the `chatlab-server` binary)
//! on `127.0.0.1:0`, real sockets, and a raw client assembled from `chatlab-proto` pieces (see `support`).
//!
//! One test binary with one module per area, as ripgrep organises its tests: it compiles once, and the helpers
//! are shared without being a crate of their own. Nothing here asserts wall-clock performance.

mod accounts;
mod admission;
mod binary;
mod chat;
mod history;
mod hostile_chat;
mod hostile_datagrams;
mod limits;
mod liveness;
mod paths;
mod resend;
mod restart;
mod robustness;
mod support;
mod wire;
