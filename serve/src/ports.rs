//! The runtime's ports: what the worker, gateway and timer roles need from the outside
//! world, as traits. `botc serve` implements them on one redb file ([`super::Embedded`]);
//! the distributed column implements the same traits on Kafka, Redis and Postgres without
//! touching the roles. [`super::contract`] is the test suite every implementation passes.
//!
//! The contract that makes crashes, replays and a second copy of a role harmless:
//! - [`Bus::publish`] returns only when the events are durable; that is when the gateway
//!   acknowledges.
//! - Work that one process at a time may do (a bus partition, a bot's reply queue, the
//!   timers, the outbox) is done under a [`Lease`] from [`Leases`]. Each lease granted on a
//!   piece of work has a higher epoch than the one before, and every write made under a
//!   lease is refused with [`StoreError::Fenced`] once a newer one exists, so a process that
//!   stalled and lost its lease cannot undo its successor's work.
//! - A worker writes a [`Batch`] with [`Committer::commit`], in this order, so that a crash
//!   at any point is repaired by doing the batch again: first its effects (transcript
//!   entries, replies, timer changes, outbox items, history), each carrying an id derived
//!   from its event so a second copy is dropped; then each session by compare-and-set on its
//!   version (per session: Redis Cluster cannot compare across keys in different slots); the
//!   bus position last, and only when every session was written. The embedded store writes
//!   a batch in one transaction, which is one allowed outcome of that order.
//! - Every stored session remembers the bus position after the last event applied to it
//!   (partition and offset), so an event delivered again is skipped.
//! - Nothing here reads the time itself: callers pass it in.

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
    /// These sessions changed under the writer (compare-and-set failed); the bus position
    /// did not move, so the batch is done again with fresh sessions.
    Conflict(Vec<String>),
    /// A newer lease on this work exists: this holder must stop doing it.
    Fenced(Work),
    /// No such bus partition.
    NoPartition(usize),
    /// The store has been closed (botc is stopping).
    Closed,
    /// The storage itself failed: disk full, I/O error, corrupt file, connection lost.
    Io(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Full => write!(f, "the event bus is full"),
            StoreError::Conflict(keys) => {
                write!(f, "the session of {} changed under this worker", keys.join(", "))
            }
            StoreError::Fenced(work) => write!(f, "the lease on {work} was taken by another process"),
            StoreError::NoPartition(p) => write!(f, "there is no bus partition {p}"),
            StoreError::Closed => write!(f, "the store is closed"),
            StoreError::Io(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Work that one holder at a time may do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Stepping the events of one bus partition.
    Partition(usize),
    /// Delivering one bot's replies (in order per conversation).
    Replies(String),
    /// Moving due timers onto the bus.
    Timers,
    /// Performing flows' http requests.
    Outbox,
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Partition(p) => write!(f, "bus partition {p}"),
            Work::Replies(bot) => write!(f, "the replies of bot `{bot}`"),
            Work::Timers => write!(f, "the timers"),
            Work::Outbox => write!(f, "the outbox"),
        }
    }
}

/// The right to do a piece of work, until a newer lease on it is granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub work: Work,
    /// Grows with every lease granted on the work.
    pub epoch: u64,
}

impl Lease {
    /// The bus partition, for a lease on one.
    pub fn partition(&self) -> Option<usize> {
        match self.work {
            Work::Partition(p) => Some(p),
            _ => None,
        }
    }
}

/// Grants leases. A lease lasts `ttl` from when it was granted or last renewed; after that
/// another caller may be granted the work (with a higher epoch), which fences the old one.
/// An expired lease that nobody took yet can still be renewed.
pub trait Leases: Send + Sync {
    /// The work for `holder` (one per process), unless another holder has an unexpired
    /// lease on it: `None` then. A holder asking again gets a new lease at once, which
    /// fences its earlier one (a role restarted after a panic takes over from its dead
    /// self). `now_ms` is unix milliseconds.
    fn acquire<'a>(
        &'a self,
        work: Work,
        holder: &'a str,
        now_ms: u64,
        ttl: std::time::Duration,
    ) -> Fut<'a, Result<Option<Lease>, StoreError>>;
    /// Extends the lease; `Err(Fenced)` when it has been lost.
    fn renew<'a>(&'a self, lease: &'a Lease, now_ms: u64, ttl: std::time::Duration) -> Fut<'a, Result<(), StoreError>>;
    /// Gives the work up at once (a clean stop), so another holder need not wait for expiry.
    fn release<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<(), StoreError>>;
    /// Says `holder` is alive among the holders of `group` (the processes doing one kind of
    /// work) until `now_ms + ttl`, and returns how many of the group are alive, itself
    /// included, so each can take its fair share of the work.
    fn members<'a>(
        &'a self,
        group: &'a str,
        holder: &'a str,
        now_ms: u64,
        ttl: std::time::Duration,
    ) -> Fut<'a, Result<usize, StoreError>>;
}

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
    /// `lease` is on [`Work::Partition`]; a fenced one is refused.
    fn committed<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<u64, StoreError>>;
    /// Up to `max` events of the leased partition from offset `from`, waiting for at least
    /// one.
    fn fetch<'a>(&'a self, lease: &'a Lease, from: u64, max: usize) -> Fut<'a, Result<Vec<Delivery>, StoreError>>;
    /// Events published and not yet committed, over all partitions.
    fn depth(&self) -> Fut<'_, Result<u64, StoreError>>;
    /// Whether publishing can work now (for `/readyz`): `Err` says why not.
    fn ready(&self) -> Fut<'_, Result<(), StoreError>>;
}

/// A conversation's stored session.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// `Session::encode` bytes.
    pub session: Vec<u8>,
    /// The session's version, for compare-and-set.
    pub version: u64,
    /// Events of partition `partition` before this offset have been applied. (Should the
    /// bus be repartitioned, the conversation's events arrive on another partition, whose
    /// offsets this says nothing about: none of them is skipped.)
    pub applied: u64,
    pub partition: u32,
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
    fn count(&self) -> Fut<'_, Result<u64, StoreError>>;
    /// Up to `max` stored sessions whose keys start with `prefix` (for operators' views, not
    /// for the data path).
    fn scan<'a>(&'a self, prefix: &'a str, max: usize) -> Fut<'a, Result<Vec<(String, Stored)>, StoreError>>;
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

/// Everything one worker batch changed, written in the order the module explains.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The lease on the partition the events came from.
    pub lease: Lease,
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

impl Batch {
    /// An empty batch of the leased partition that moves its position to `next_offset`.
    pub fn new(lease: Lease, next_offset: u64) -> Batch {
        Batch {
            lease,
            next_offset,
            sessions: Vec::new(),
            messages: Vec::new(),
            timers: Vec::new(),
            outbox: Vec::new(),
            history: Vec::new(),
            replies: Vec::new(),
            quarantined: Vec::new(),
        }
    }
}

/// A message waiting to be delivered through a platform's API.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedReply {
    /// Derived from the event's id and the effect's index: the same reply has the same id.
    pub id: String,
    pub bot: String,
    /// The conversation key: a conversation's replies are delivered in order.
    pub key: String,
    pub reply: botc_runtime::platforms::Reply,
}

/// Replies waiting for delivery, per bot, in the order they were committed. A reply
/// committed again while the first copy waits (same id) is kept once.
pub trait ReplyQueue: Send + Sync {
    /// The bot's oldest waiting replies, with their positions. `lease` is on
    /// [`Work::Replies`] for the bot.
    fn waiting<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<(u64, QueuedReply)>, StoreError>>;
    /// The reply at this position was delivered (or can never be): forget it.
    fn delivered<'a>(&'a self, lease: &'a Lease, position: u64) -> Fut<'a, Result<(), StoreError>>;
    /// Completes when replies may have been queued since it was called.
    fn queued(&self) -> Fut<'_, ()>;
    fn depth(&self) -> Fut<'_, Result<u64, StoreError>>;
}

pub trait Committer: Send + Sync {
    /// Writes the batch (see the module's write order). Shared, so a retry after a failed
    /// commit sends the same batch without copying it. `Err(Conflict(keys))` names every
    /// session whose version was not the expected one; `Err(Fenced)` when the batch's lease
    /// is no longer the partition's newest, and then nothing was written.
    fn commit(&self, batch: std::sync::Arc<Batch>) -> Fut<'_, Result<(), StoreError>>;
}

pub trait TimerStore: Send + Sync {
    /// Moves every timer due at `now` (unix seconds) onto the bus; returns how many. `lease`
    /// is on [`Work::Timers`]. A crash part way may publish a timer event twice (with the
    /// same id); the session ignores a timer that is no longer running.
    fn fire_due<'a>(&'a self, lease: &'a Lease, now: u64) -> Fut<'a, Result<usize, StoreError>>;
    /// When the next timer falls due.
    fn next_due(&self) -> Fut<'_, Result<Option<u64>, StoreError>>;
    fn pending(&self) -> Fut<'_, Result<u64, StoreError>>;
    /// Completes when a timer may have been scheduled since it was called.
    fn scheduled(&self) -> Fut<'_, ()>;
}

/// The web channel's transcripts. An entry committed again (same id) is kept once; a store
/// may bound how far back in the conversation it looks, as long as a batch done again after
/// a crash is covered (the embedded store: the conversation's last 32 entries).
pub trait Transcript: Send + Sync {
    /// A conversation's entries after position `seq`.
    fn after<'a>(&'a self, key: &'a str, seq: u64) -> Fut<'a, Result<Vec<Entry>, StoreError>>;
    /// Completes when conversation `key`'s transcript may have changed since it was called
    /// (a store may also complete it for a change elsewhere; the caller looks again).
    fn changed<'a>(&'a self, key: &'a str) -> Fut<'a, ()>;
}

/// Flows' http requests waiting to be made. An item committed again while the first copy
/// waits (same id) is kept once.
pub trait Outbox: Send + Sync {
    /// Items not yet completed. `lease` is on [`Work::Outbox`].
    fn pending<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<OutboxItem>, StoreError>>;
    /// Publishes the item's result event, then forgets the item. Completing an item that is
    /// gone publishes nothing.
    fn complete<'a>(&'a self, lease: &'a Lease, id: String, result: Event) -> Fut<'a, Result<(), StoreError>>;
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
    pub buttons: Vec<botc_runtime::vm::Button>,
    /// Unix seconds.
    pub at: u64,
}

/// History records committed with their batch and not yet in the [`HistorySink`]. It
/// needs no lease: the sink keeps one record per id, so two shippers only repeat work.
pub trait HistoryQueue: Send + Sync {
    /// The oldest records not shipped, with their positions.
    fn unshipped(&self, max: usize) -> Fut<'_, Result<Vec<(u64, HistoryRecord)>, StoreError>>;
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

/// Where a flow version was built from: the git commit `botc deploy` found (empty for a
/// version `botc serve` registered from files it was given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    pub commit: String,
    /// The commit's author, `Name <email>`.
    pub author: String,
    /// The commit message's first line.
    pub message: String,
}

/// A flow version in the registry: verified bytecode by content hash, numbered 1, 2, … per
/// bot in the order the registry first saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub bot: String,
    pub number: u64,
    pub hash: [u8; 32],
    pub source: Source,
    /// Unix seconds it was first registered.
    pub at: u64,
}

/// One move of an environment's alias (`production`, `staging`) to a version of a bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deploy {
    /// Assigned by the registry: increasing over all bots and environments.
    pub seq: u64,
    pub bot: String,
    pub environment: String,
    /// The version number the alias pointed at before (`None`: the first deploy).
    pub from: Option<u64>,
    pub to: u64,
    /// `deploy` or `rollback`.
    pub action: String,
    /// Who ran it (`user@host`).
    pub by: String,
    /// What it did to waiting conversations, as `botc deploy` showed it.
    pub plan: String,
    /// Unix seconds.
    pub at: u64,
}

/// Every flow version botc has run, by program hash, so a conversation pinned to an older
/// version can still be understood (and migrated) after the flow changed; and the
/// environments (aliases per bot) that `botc deploy` moves and running processes follow.
pub trait FlowRegistry: Send + Sync {
    /// Records a version of `bot` (first registered at unix second `at`); a version already
    /// there keeps its number and source. Returns it as the registry holds it.
    fn register(
        &self,
        bot: String,
        hash: [u8; 32],
        bytecode: Vec<u8>,
        source: Source,
        at: u64,
    ) -> Fut<'_, Result<Version, StoreError>>;
    /// Every version of a bot's flow ever registered, as bytecode.
    fn programs(&self, bot: String) -> Fut<'_, Result<Vec<Vec<u8>>, StoreError>>;
    /// One version's bytecode, by hash.
    fn program(&self, bot: String, hash: [u8; 32]) -> Fut<'_, Result<Option<Vec<u8>>, StoreError>>;
    /// A bot's versions, oldest first.
    fn versions(&self, bot: String) -> Fut<'_, Result<Vec<Version>, StoreError>>;
    /// The version each bot's alias in `environment` points at.
    fn environment(&self, environment: String) -> Fut<'_, Result<Vec<Version>, StoreError>>;
    /// Moves `deploy.bot`'s alias in `deploy.environment` to version `deploy.to` if it still
    /// points at `deploy.from` (compare-and-set: [`StoreError::Conflict`] when another
    /// deploy moved it meanwhile), and records the deploy. Returns its sequence number.
    fn point(&self, deploy: Deploy) -> Fut<'_, Result<u64, StoreError>>;
    /// The latest deploys, newest first, of one bot or of all.
    fn deploys(&self, bot: Option<String>, limit: usize) -> Fut<'_, Result<Vec<Deploy>, StoreError>>;
    /// The sequence number of the latest deploy (0: none yet).
    fn last_deploy(&self) -> Fut<'_, Result<u64, StoreError>>;
    /// Completes when a deploy later than `seq` exists (or may: a caller re-reads what it
    /// needs), within seconds of it being made by any process.
    fn deployed_after(&self, seq: u64) -> Fut<'_, Result<u64, StoreError>>;
    /// The deployment's secret named `name`: `fresh` (random bytes the caller made) when
    /// there is none yet, which is then kept; otherwise the one kept. Every process of a
    /// deployment gets the same.
    fn secret(&self, name: String, fresh: [u8; 32]) -> Fut<'_, Result<[u8; 32], StoreError>>;
}

/// Send budgets ([`botc_runtime::platforms::limiter`]): all checks of a send pass together or none
/// is charged; a platform's 429 is written back. Shared by every dispatcher, so a limiter
/// that cannot reach its store answers with a wait, never with a pass.
pub trait RateLimiter: Send + Sync {
    /// `Err(wait)`: over budget, try again after `wait`.
    fn acquire<'a>(
        &'a self,
        checks: &'a [botc_runtime::platforms::limiter::Check],
    ) -> Fut<'a, Result<(), std::time::Duration>>;
    fn penalize<'a>(
        &'a self,
        checks: &'a [botc_runtime::platforms::limiter::Check],
        retry_after: std::time::Duration,
    ) -> Fut<'a, ()>;
}

impl RateLimiter for botc_runtime::platforms::limiter::Gcra {
    fn acquire<'a>(
        &'a self,
        checks: &'a [botc_runtime::platforms::limiter::Check],
    ) -> Fut<'a, Result<(), std::time::Duration>> {
        Box::pin(std::future::ready(botc_runtime::platforms::limiter::Gcra::acquire(self, checks)))
    }
    fn penalize<'a>(
        &'a self,
        checks: &'a [botc_runtime::platforms::limiter::Check],
        retry_after: std::time::Duration,
    ) -> Fut<'a, ()> {
        botc_runtime::platforms::limiter::Gcra::penalize(self, checks, retry_after);
        Box::pin(std::future::ready(()))
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
    fn call(&self, call: botc_runtime::platforms::Call) -> Fut<'_, Result<ApiResponse, String>>;
}
