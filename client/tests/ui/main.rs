//! Headless tests of the desktop app's window with `egui_kittest`.
//!
//! Each test drives [`ChatApp`] against the in-memory [`FakeBackend`] the way a student would: it finds widgets by
//! their visible label (through the AccessKit tree, as a screen reader would), clicks and types, then checks what
//! the window shows. The harness also fails a test when any text on screen uses a character no installed font can
//! draw, which is how the Chinese tests prove the embedded font covers the interface.
//!
//! `real` runs the same window against a real server through the real network side.

mod chat;
mod chinese;
mod harness;
mod real;
mod sign_in;
mod stats;
