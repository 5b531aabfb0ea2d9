//! `chatlab-lab load`: many bot users against one real server, and what it cost the server.
//!
//! This is the "server under load" experiment. A few hundred bots, each a complete chatlab client built on the
//! client library, log in at a chosen rate, chat in the world room and one to one at a chosen rate over UDP, TCP or
//! both, and the run reports what a class wants to know about a server under load:
//!
//! - **throughput**: logins per second, accepted messages per second, deliveries per second;
//! - **latency**: from `send` to the server's acceptance, and from `send` to the receiving bot (p50, p99, max), on
//!   one clock because every bot lives in this process;
//! - **refusals**: every failed connect, registration, login or send, counted by the client library's error kind
//!   and sentence; a server protecting itself refuses long before it falls over, and *which* refusal tells which
//!   limit was reached;
//! - **cost**: with `--server-pid`, the server's resident memory and CPU before, at the peak and after.
//!
//! A world message fans out to every other bot, so N bots at r messages/s with a share w to the world room ask for
//! about `N·r·(1 − w)` one-to-one deliveries and `N·r·w·(N − 1)` world deliveries per second: the world room is
//! where a chat server's load grows with the square of the class.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | [`LoadConfig`]: how many bots, how fast, which transport, for how long |
//! | `run` | [`run`]: the phases (preflight, login, chat, drain, finish) |
//! | `bot` | one bot: connect, account, login, and the task that reads its events |
//! | `sender` | a bot's open-loop sending schedule |
//! | `text` | the stamp inside each message that lets the receiver measure latency |
//! | `ledger` | which accepted message reached how many of the bots it should |
//! | [`reason`] | failures by operation and reason |
//! | [`procstat`], `watch` | a process's memory and CPU from `/proc`, before, at the peak, after |
//! | [`report`] | [`LoadReport`]: the figures, a table, JSON |
//! | `progress` | the progress line on standard error |
//! | `fds` | enough file descriptors for the bots |

mod bot;
pub mod config;
mod fds;
mod ledger;
pub mod procstat;
mod progress;
pub mod reason;
pub mod report;
mod run;
mod sender;
mod shared;
mod text;
pub mod watch;

pub use config::{DEFAULT_PASSWORD, LoadConfig, TransportMix};
pub use report::LoadReport;
pub use run::{LoadError, run};
