//! # chatlab-client
//!
//! The client core of chatlab (being written).
pub mod ui;
