//! Discord, Slack and Telegram: what botc needs to know about each platform's webhooks and
//! APIs, as pure code (no I/O): verifying requests, turning payloads into [`Event`]s,
//! building replies, reading their rate-limit answers. The gateway and the dispatcher in
//! `serve` do the I/O around it.
//!
//! [`Event`]: crate::serve::Event

pub mod limiter;
pub mod verify;
