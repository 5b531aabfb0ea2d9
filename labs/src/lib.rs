//! # chatlab-labs
//!
//! Classroom experiments around chatlab. A lab is a question a class can answer with numbers: how much does loss
//! cost a reliable protocol, how does head-of-line blocking show up, what does the RTO floor change. Each experiment
//! is reproducible: it runs in simulated time over the seeded impairment model of `chatlab-proto`, so every student
//! who types the same command gets the same table. The load experiment is the exception: it measures a real server
//! on a real machine, and its figures belong to that machine.
//!
//! - [`sweep`]: one simulation per value of a parameter (loss, jitter, RTO floor…) and a table of the results.
//! - [`relay`]: a TCP and UDP relay in front of a real server that impairs datagrams and can record every byte.
//! - [`load`]: hundreds of bot users against a real server: throughput, latency, refusals by reason, and the
//!   server's memory and CPU.

pub mod load;
pub mod relay;
pub mod sweep;
