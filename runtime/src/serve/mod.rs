//! `botc serve`: every role in one process. The web-chat channel is built in, so a person
//! can talk to the bots in a browser.
//!
//! The data path is the one DESIGN.md draws: the HTTP handler (gateway) only validates,
//! publishes to the bus and acknowledges once the event is durable; a worker per bus
//! partition runs the VM and commits each batch's effects (sessions, replies, timers, outbox)
//! at once; the timer scheduler and the outbox runner turn due timers and finished http
//! requests back into events. The roles talk to storage only through the [`ports`]; here
//! every port is the embedded redb store ([`Embedded`]).

mod embedded;
mod event;
mod history;
mod http;
mod metrics;
pub mod ports;
mod roles;
mod transcript;
mod worker;

pub use embedded::{Embedded, OpenError, partition_of};
pub use event::{EVENT_VERSION, Event};
pub use history::{SqliteHistory, history_path};
pub use metrics::Metrics;
pub use transcript::{Entry, From};

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
    /// Largest request body the gateway accepts.
    pub body_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { body_limit: 1024 * 1024 }
    }
}

/// Bus partitions and capacity per partition, when nothing else is configured.
pub const DEFAULT_PARTITIONS: usize = 4;
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// The storage every role uses, one trait object per port.
#[derive(Clone)]
pub struct Ports {
    pub bus: Arc<dyn ports::Bus>,
    pub sessions: Arc<dyn ports::SessionStore>,
    pub committer: Arc<dyn ports::Committer>,
    pub timers: Arc<dyn ports::TimerStore>,
    pub transcript: Arc<dyn ports::Transcript>,
    pub outbox: Arc<dyn ports::Outbox>,
    /// Publishes botc's own events (due timers, http responses), which are never refused.
    pub internal: Arc<dyn ports::InternalBus>,
    pub history_queue: Arc<dyn ports::HistoryQueue>,
    pub history: Arc<dyn ports::HistorySink>,
    pub flows: Arc<dyn ports::FlowRegistry>,
}

impl Ports {
    /// One machine: everything in the data directory, in redb and SQLite.
    pub fn embedded(store: Arc<Embedded>, history: Arc<SqliteHistory>) -> Ports {
        Ports {
            bus: store.clone(),
            sessions: store.clone(),
            committer: store.clone(),
            timers: store.clone(),
            transcript: store.clone(),
            outbox: store.clone(),
            internal: store.clone(),
            history_queue: store,
            history: history.clone(),
            flows: history,
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub use http::{Shared, serve};
