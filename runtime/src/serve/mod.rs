//! `botc serve`: every role in one process. The web-chat channel is built in, so a person
//! can talk to the bots in a browser.
//!
//! The data path is the one DESIGN.md draws: the HTTP handler (gateway) only validates,
//! publishes to the bus and acknowledges once the event is durable; a worker per bus
//! partition runs the VM and commits each batch's effects (sessions, replies, timers, outbox)
//! at once; the timer scheduler and the outbox runner turn due timers and finished http
//! requests back into events. The roles talk to storage only through the [`ports`]; here
//! every port is the embedded redb store ([`Embedded`]).

mod dispatch;
mod embedded;
mod event;
pub mod fake;
mod history;
mod http;
mod metrics;
pub mod ports;
mod roles;
mod transcript;
mod webhook;
mod worker;

pub use dispatch::HttpClient;
pub use embedded::{Embedded, OpenError, partition_of};
pub use event::{EVENT_VERSION, Event, key as conversation_key};
pub use history::{SqliteHistory, history_path};
pub use metrics::Metrics;
pub use transcript::{Entry, From};

pub use crate::platforms::Platform;
use crate::platforms::limiter::Limit;
use crate::vm::Loaded;
use std::sync::Arc;

/// A bot: a flow made reachable on one platform.
pub struct Bot {
    pub id: String,
    pub name: String,
    pub program: Arc<Loaded>,
    pub platform: Platform,
    pub secrets: Secrets,
    /// Send budgets: the whole bot, and one conversation.
    pub per_bot: Limit,
    pub per_conversation: Limit,
}

impl Bot {
    /// A web-chat bot (no secrets, no send limits).
    pub fn web(id: &str, name: &str, program: Arc<Loaded>) -> Bot {
        Bot {
            id: id.into(),
            name: name.into(),
            program,
            platform: Platform::Web,
            secrets: Secrets::default(),
            per_bot: Limit::per_second(1000),
            per_conversation: Limit::per_second(1000),
        }
    }
}

/// A secret value (token, signing secret): never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a bot needs to prove requests are its platform's and to call its API.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// Bot token (Discord, Telegram) or bot user OAuth token (Slack).
    pub token: Option<Secret>,
    /// Discord: the application's public key.
    pub discord_key: Option<crate::platforms::verify::DiscordKey>,
    /// Slack: the signing secret.
    pub signing_secret: Option<Secret>,
    /// Telegram: the `secret_token` given to setWebhook.
    pub webhook_secret: Option<Secret>,
}

/// Where each platform's API is (tests point these at a fake server on loopback).
#[derive(Clone, Debug)]
pub struct ApiBases {
    pub discord: String,
    pub slack: String,
    pub telegram: String,
}

impl Default for ApiBases {
    fn default() -> Self {
        ApiBases {
            discord: "https://discord.com/api/v10".into(),
            slack: "https://slack.com/api".into(),
            telegram: "https://api.telegram.org".into(),
        }
    }
}

/// Tunables, with defaults fit for one machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest request body the gateway accepts.
    pub body_limit: usize,
    pub api: ApiBases,
    /// Conversations no event reached for this long are forgotten (session, transcript,
    /// timers; their history stays). `None` keeps them forever.
    pub forget_idle: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: 1024 * 1024,
            api: ApiBases::default(),
            forget_idle: Some(std::time::Duration::from_secs(30 * 86_400)),
        }
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
    pub replies: Arc<dyn ports::ReplyQueue>,
    pub limiter: Arc<dyn ports::RateLimiter>,
    pub client: Arc<dyn ports::PlatformClient>,
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
            history_queue: store.clone(),
            replies: store,
            history: history.clone(),
            flows: history,
            limiter: Arc::new(crate::platforms::limiter::Gcra::new(crate::platforms::limiter::SystemClock::default())),
            client: Arc::new(dispatch::HttpClient::default()),
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub use http::{Shared, serve};
