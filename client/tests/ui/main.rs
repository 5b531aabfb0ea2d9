//! Headless tests of the desktop app's window with `egui_kittest`.
//!
//! Each test drives [`ChatApp`] against the in-memory [`FakeBackend`] the way a student would: it finds widgets by
//! their visible label (through the AccessKit tree, as a screen reader would), clicks and types, then checks what
//! the window shows. The harness also fails a test when any text on screen uses a character no installed font can
//! draw, which is how the Chinese tests prove the embedded font covers the interface.
//!
//! `real` runs the same window against a real server from the server library, through the real network side: every
//! behaviour the app promises (sign-in, acknowledged messages, private chats, unread badges, changing statistics,
//! Chinese without missing glyphs, the reconnect) is checked there. The fake-backend modules add what a real server
//! cannot be made to do on demand: an acknowledgement held back, exact statistics figures, export files.

mod chat;
mod chinese;
mod harness;
mod real;
mod sign_in;
mod stats;
