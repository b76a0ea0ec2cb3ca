//! The runtime's ports: what the worker, gateway and timer roles need from the outside
//! world, as traits. `botc serve` implements them on one redb file ([`super::Embedded`]);
//! the distributed column implements the same traits on Kafka, Redis and Postgres without
//! touching the roles.
//!
//! The contract that makes crashes and replays harmless:
//! - [`Bus::publish`] returns only when the events are durable; that is when the gateway
//!   acknowledges.
//! - A worker writes a [`Batch`] (sessions, the partition's new position, replies, timer
//!   changes, outbox items, history) with [`Committer::commit`]. The embedded store writes it
//!   in one transaction; a distributed store writes the outbox and sessions first (with
//!   compare-and-set on the session version) and the bus position last.
//! - Every stored session remembers the bus position after the last event applied to it, so
//!   an event delivered again (a replay after a crash, or a deliberate rewind) is skipped.

use super::Event;
use super::transcript::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// A bus partition holds as many events as it may; try again later.
    Full,
    /// A session changed under the writer (compare-and-set failed).
    Conflict(String),
    /// The storage itself failed: disk full, I/O error, corrupt file.
    Io(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Full => write!(f, "the event bus is full"),
            StoreError::Conflict(key) => write!(f, "the session of `{key}` changed under this worker"),
            StoreError::Io(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// An event and its position in its bus partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub offset: u64,
    pub event: Event,
}

/// The event bus: partitioned by conversation key, ordered per key, bounded.
pub trait Bus: Send + Sync {
    fn partitions(&self) -> usize;
    fn partition_of(&self, key: &str) -> usize;
    /// Appends events durably. `Err(Full)` when a partition is at capacity: nothing of the
    /// call was appended.
    fn publish(&self, events: Vec<Event>) -> Fut<'_, Result<(), StoreError>>;
    /// Publishes `event` unless an event with the same id was published less than `ttl`
    /// ago (platforms redeliver): `Ok(false)` for such a duplicate. The check and the
    /// append are one step, so a refused publish (`Full`) leaves no mark and the platform's
    /// retry is taken.
    fn publish_once(&self, event: Event, ttl: std::time::Duration) -> Fut<'_, Result<bool, StoreError>>;
    /// Where the partition's worker resumes: the offset after the last committed batch.
    fn committed(&self, partition: usize) -> Fut<'_, Result<u64, StoreError>>;
    /// Up to `max` events of `partition` from offset `from`, waiting for at least one.
    fn fetch(&self, partition: usize, from: u64, max: usize) -> Fut<'_, Result<Vec<Delivery>, StoreError>>;
    /// Events published and not yet committed, over all partitions.
    fn depth(&self) -> u64;
    /// Whether publishing can work now (for `/readyz`): `Err` says why not.
    fn ready(&self) -> Result<(), StoreError>;
}

/// A conversation's stored session.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// `Session::encode` bytes.
    pub session: Vec<u8>,
    /// The session's version, for compare-and-set.
    pub version: u64,
    /// Events of the conversation's partition before this offset have been applied.
    pub applied: u64,
    /// The user's display name, as last given, for events that carry none (timers,
    /// hand-backs, web messages without `user`).
    pub name: String,
    /// When an event last reached the conversation (unix seconds; 0: before this was kept).
    pub touched_at: u64,
}

/// What the store holds for a conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    Stored(Stored),
    /// A record the store cannot read (damaged, or from an unknown version): its bytes, and
    /// why. The worker quarantines it and starts the conversation over.
    Unreadable {
        raw: Vec<u8>,
        error: String,
    },
}

pub trait SessionStore: Send + Sync {
    /// What is stored for `keys`, in one call; keys without a record are absent.
    fn load<'a>(&'a self, keys: &'a [String]) -> Fut<'a, Result<HashMap<String, Found>, StoreError>>;
    fn count(&self) -> Result<u64, StoreError>;
    /// Up to `max` stored sessions whose keys start with `prefix` (for operators' views, not
    /// for the data path).
    fn scan(&self, prefix: &str, max: usize) -> Result<Vec<(String, Stored)>, StoreError>;
    /// Forgets up to `max` conversations no event reached since `before` (unix seconds):
    /// session, transcript and pending timers. Their history stays. Returns how many.
    fn forget_idle(&self, before: u64, max: usize) -> Fut<'_, Result<usize, StoreError>>;
}

/// What a session write expects to replace (compare-and-set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No record.
    Absent,
    /// A record at this version.
    Version(u64),
    /// A record that could not be read (it has been quarantined).
    Unreadable,
}

/// A session to write over what the worker loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionWrite {
    pub key: String,
    pub expected: Expected,
    pub stored: Stored,
}

/// An unreadable session record, kept aside (never deleted) for an operator to look at.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    pub key: String,
    pub raw: Vec<u8>,
    /// Why it could not be read.
    pub error: String,
    /// Unix seconds: the time of the event that found it.
    pub at: u64,
}

/// A message for a conversation's transcript (the web channel reads it from there).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub key: String,
    pub entry: Entry,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TimerChange {
    /// Fire `event` (an `Input::Timer`) at unix second `at`.
    Start {
        at: u64,
        event: Box<Event>,
    },
    Cancel {
        key: String,
        timer: u32,
    },
}

/// Work for something outside the store: an http request a flow makes. Its result comes
/// back as `result` with the response filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: String,
    pub request: HttpRequest,
    /// The event to publish with the response (its `kind` is replaced).
    pub result: Event,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Everything one worker batch changed, written all-or-nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub partition: usize,
    /// The partition's position after this batch.
    pub next_offset: u64,
    pub sessions: Vec<SessionWrite>,
    pub messages: Vec<Message>,
    pub timers: Vec<TimerChange>,
    pub outbox: Vec<OutboxItem>,
    /// What to add to the conversations' history (shipped to the [`HistorySink`] later).
    pub history: Vec<HistoryRecord>,
    /// Messages for platform users, for the dispatcher.
    pub replies: Vec<QueuedReply>,
    /// Unreadable sessions found by this batch.
    pub quarantined: Vec<Quarantined>,
}

/// A message waiting to be delivered through a platform's API.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedReply {
    /// Derived from the event's id and the effect's index: the same reply has the same id.
    pub id: String,
    pub bot: String,
    /// The conversation key: a conversation's replies are delivered in order.
    pub key: String,
    pub reply: crate::platforms::Reply,
}

/// Replies waiting for delivery, per bot, in the order they were committed.
pub trait ReplyQueue: Send + Sync {
    /// The bot's oldest waiting replies, with their positions.
    fn waiting(&self, bot: &str, max: usize) -> Result<Vec<(u64, QueuedReply)>, StoreError>;
    /// The reply at this position was delivered (or can never be): forget it.
    fn delivered(&self, bot: String, position: u64) -> Fut<'_, Result<(), StoreError>>;
    /// Completes when replies may have been queued since it was called.
    fn queued(&self) -> Fut<'_, ()>;
    fn depth(&self) -> Result<u64, StoreError>;
}

pub trait Committer: Send + Sync {
    /// Shared, so a retry after a failed commit sends the same batch without copying it.
    fn commit(&self, batch: std::sync::Arc<Batch>) -> Fut<'_, Result<(), StoreError>>;
}

pub trait TimerStore: Send + Sync {
    /// Moves every timer due at `now` onto the bus, atomically; returns how many.
    fn fire_due(&self, now: u64) -> Fut<'_, Result<usize, StoreError>>;
    /// When the next timer falls due.
    fn next_due(&self) -> Result<Option<u64>, StoreError>;
    fn pending(&self) -> Result<u64, StoreError>;
    /// Completes when a timer may have been scheduled since it was called.
    fn scheduled(&self) -> Fut<'_, ()>;
}

pub trait Transcript: Send + Sync {
    /// A conversation's entries after position `seq`.
    fn after(&self, key: &str, seq: u64) -> Result<Vec<Entry>, StoreError>;
    /// Completes when any transcript may have changed since it was called.
    fn changed(&self) -> Fut<'_, ()>;
}

pub trait Outbox: Send + Sync {
    /// Items not yet completed.
    fn pending(&self, max: usize) -> Result<Vec<OutboxItem>, StoreError>;
    /// Removes the item and publishes its result event, atomically.
    fn complete(&self, id: String, result: Event) -> Fut<'_, Result<(), StoreError>>;
    /// Completes when new items may be waiting.
    fn added(&self) -> Fut<'_, ()>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// An event that reached the bot: a message, a button, a timer, an http response.
    In,
    /// Something the bot (or botc, for notes) sent.
    Out,
}

/// One line of a conversation's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRecord {
    /// The event's id, or the reply's (derived from its event's), so storing a record twice
    /// keeps one.
    pub id: String,
    pub bot: String,
    pub conversation: String,
    pub user_id: String,
    pub platform: String,
    pub direction: Direction,
    /// `text`, `button`, `timer`, `http` or `handback` coming in; `message` or `note` going out.
    pub kind: String,
    pub text: String,
    pub buttons: Vec<crate::vm::Button>,
    /// Unix seconds.
    pub at: u64,
}

/// History records committed with their batch and not yet in the [`HistorySink`].
pub trait HistoryQueue: Send + Sync {
    /// The oldest records not shipped, with their positions.
    fn unshipped(&self, max: usize) -> Result<Vec<(u64, HistoryRecord)>, StoreError>;
    /// Forgets records up to and including position `upto`: the sink has them.
    fn shipped(&self, upto: u64) -> Fut<'_, Result<(), StoreError>>;
    /// Completes when new records may be waiting.
    fn recorded(&self) -> Fut<'_, ()>;
}

/// Where history is kept for people to read (`botc history`). Storing a record whose id is
/// already there keeps the first.
pub trait HistorySink: Send + Sync {
    fn record(&self, records: Vec<HistoryRecord>) -> Fut<'_, Result<(), StoreError>>;
}

/// Every flow version botc has run, by program hash, so a conversation pinned to an older
/// version can still be understood (and migrated) after the flow changed.
pub trait FlowRegistry: Send + Sync {
    /// Records that `bot` serves this version (first served at unix second `at`).
    fn register(&self, bot: String, hash: [u8; 32], bytecode: Vec<u8>, at: u64) -> Fut<'_, Result<(), StoreError>>;
    /// Every version of a bot's flow ever served, as bytecode.
    fn versions(&self, bot: String) -> Fut<'_, Result<Vec<Vec<u8>>, StoreError>>;
}

/// Send budgets ([`crate::platforms::limiter`]): all checks of a send pass together or none
/// is charged; a platform's 429 is written back.
pub trait RateLimiter: Send + Sync {
    fn acquire(&self, checks: &[crate::platforms::limiter::Check]) -> Result<(), std::time::Duration>;
    fn penalize(&self, checks: &[crate::platforms::limiter::Check], retry_after: std::time::Duration);
}

impl RateLimiter for crate::platforms::limiter::Gcra {
    fn acquire(&self, checks: &[crate::platforms::limiter::Check]) -> Result<(), std::time::Duration> {
        crate::platforms::limiter::Gcra::acquire(self, checks)
    }
    fn penalize(&self, checks: &[crate::platforms::limiter::Check], retry_after: std::time::Duration) {
        crate::platforms::limiter::Gcra::penalize(self, checks, retry_after)
    }
}

/// A platform API's answer, as much of it as botc reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Performs platform API calls. `Err` is a transport failure (no answer): retried.
pub trait PlatformClient: Send + Sync {
    fn call(&self, call: crate::platforms::Call) -> Fut<'_, Result<ApiResponse, String>>;
}
