//! # chatlab-server
//!
//! The server of chatlab (being written).
