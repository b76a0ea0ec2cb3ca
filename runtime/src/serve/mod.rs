//! `botc serve`: every role in one process, on in-process adapters. The web-chat channel is
//! built in, so a person can talk to the bots in a browser.
//!
//! The data path is the one DESIGN.md draws: the HTTP handler (gateway) only validates,
//! publishes to the bus and acknowledges; a worker per bus partition runs the VM; effects go
//! to the outbox (the web-chat transcript), the timer scheduler and the http caller.
//!
//! This first version keeps sessions, timers and transcripts in memory: nothing survives a
//! restart yet (persistent adapters are the next step of issue 4).

mod bus;
mod http;
mod metrics;
mod timers;
mod transcript;
mod worker;

pub use bus::{BusFull, MemoryBus};
pub use metrics::Metrics;
pub use transcript::{Entry, From, Transcripts};

use crate::vm::Loaded;
use std::sync::Arc;

/// A bot: a flow made reachable.
pub struct Bot {
    pub id: String,
    pub name: String,
    pub program: Arc<Loaded>,
}

/// Tunables, with defaults fit for one machine.
#[derive(Clone, Debug)]
pub struct Options {
    pub partitions: usize,
    /// Events a partition holds before the gateway answers 503.
    pub queue_capacity: usize,
    /// Largest request body the gateway accepts.
    pub body_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { partitions: 4, queue_capacity: 10_000, body_limit: 1024 * 1024 }
    }
}

/// A normalized inbound event: what happened, to which conversation of which bot.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique per event; replies derive their ids from it, and a session never applies the
    /// same event twice.
    pub id: String,
    pub bot: String,
    pub conversation: String,
    pub user_id: String,
    pub user_name: String,
    pub kind: crate::vm::Input,
    /// Unix seconds.
    pub received_at: u64,
}

impl Event {
    /// The key that orders events: one conversation of one bot.
    pub fn key(&self) -> String {
        format!("{}/{}", self.bot, self.conversation)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub use http::{Shared, serve};
