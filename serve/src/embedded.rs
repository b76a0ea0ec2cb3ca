//! The embedded store: every port of `botc serve` on one redb file in the data directory.
//!
//! One writer thread owns every write. Gateways, workers, the timer scheduler and the
//! outbox send it jobs; it applies all the jobs waiting at that moment in one transaction
//! and commits it durably (group commit: one fsync for many events), then answers each job.
//! So an event is acknowledged only once it is on disk, and a worker's batch (sessions, the
//! partition's position, replies, timer changes, outbox items) lands all at once or not at
//! all. Reads go straight to the database on the caller's thread (redb readers never wait
//! for the writer).

use super::Event;
use super::datafile::DataFile;
use super::ports::*;
use super::records::*;
use super::transcript::Entry;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{Notify, oneshot};

/// How much of the data file is cached in memory unless configured (`[limits]
/// store_cache_mb`).
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (partition, offset) → `Event::encode`.
const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("log");
/// partition → the offset after the last committed batch.
const OFFSETS: TableDefinition<u32, u64> = TableDefinition::new("offsets");
/// conversation key → applied offset, version, `Session::encode`.
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (last touched, conversation key): sessions by age, to forget idle conversations.
const TOUCHED: TableDefinition<(u64, &str), ()> = TableDefinition::new("touched");
/// (due at, conversation key, timer number) → the timer event.
const TIMERS: TableDefinition<(u64, &str, u32), &[u8]> = TableDefinition::new("timers");
/// (conversation key, timer number) → due at, to cancel by name.
const TIMER_INDEX: TableDefinition<(&str, u32), u64> = TableDefinition::new("timer_index");
/// (conversation key, position) → transcript entry.
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// item id → outbox item.
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// event id → when its dedupe mark expires (unix seconds).
const DEDUPE: TableDefinition<&str, u64> = TableDefinition::new("dedupe");
/// (expires, event id), to sweep expired marks.
const DEDUPE_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("dedupe_expiry");
/// (bot, position) → a reply waiting for the dispatcher.
const REPLIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("replies");
/// reply id → its position, while it waits: a reply committed again is kept once.
const REPLY_IDS: TableDefinition<&str, u64> = TableDefinition::new("reply_ids");
/// position → history record not yet shipped to the history sink.
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// position → an unreadable session record, kept for an operator (`encode_quarantined`).
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");

/// The layout of the data in the file; see `init`.
const FORMAT: u64 = 3;

/// Committed events kept per partition after their batch, so a worker can be rewound and
/// an operator can look back; older ones are deleted as batches commit.
const RETAIN: u64 = 10_000;

/// A transcript entry committed again is kept once if it is among its conversation's this
/// many latest entries (see `Writer::commit`).
const RECENT: usize = 32;

/// Most jobs applied in one transaction.
const GROUP: usize = 2048;

struct Part {
    /// Offset the next appended event gets.
    next: AtomicU64,
    committed: AtomicU64,
    ready: Notify,
}

struct Signals {
    parts: Vec<Part>,
    /// Long-polls waiting for a conversation's transcript, by conversation: a commit wakes
    /// only the readers of the conversations it wrote to.
    transcript: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    timers: Notify,
    outbox: Notify,
    history: Notify,
    replies: Notify,
    /// Why the last write failed, while writes fail (disk full, I/O error): `/readyz` says
    /// so, and a load balancer stops sending until a write works again.
    failing: std::sync::Mutex<Option<String>>,
}

/// The newest lease granted on a piece of work, and until when it holds (unix ms). Leases
/// live in memory: one process at a time opens a data directory, so every holder is in it.
#[derive(Clone)]
struct Held {
    epoch: u64,
    until_ms: u64,
    holder: String,
}

type LeaseTable = Arc<Mutex<HashMap<Work, Held>>>;

/// `Err(Fenced)` unless `lease` is the newest on its work.
fn check(leases: &LeaseTable, lease: &Lease) -> Result<(), StoreError> {
    let epoch = leases.lock().unwrap_or_else(|e| e.into_inner()).get(&lease.work).map(|h| h.epoch);
    match epoch {
        Some(e) if e == lease.epoch => Ok(()),
        _ => Err(StoreError::Fenced(lease.work.clone())),
    }
}

pub struct Embedded {
    file: Arc<DataFile>,
    leases: LeaseTable,
    /// By group, each holder and until when it is alive (unix ms).
    members: Mutex<HashMap<String, HashMap<String, u64>>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    signals: Arc<Signals>,
    /// This store's name (see `init`), and whether this opening made it.
    identity: (u64, bool),
    _lock: std::fs::File,
}

/// Why the data directory could not be opened, worded for the person starting botc.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

std::thread_local! {
    /// Set while [`quietly`] runs on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic in it without printing it (the caller turns it into an error
/// that says what to do). Panics elsewhere print as always.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result
}

fn io(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Io(e.into().to_string())
}

impl Embedded {
    /// Opens (or creates) the store in `dir`. One process at a time may use a directory; the
    /// partition count is fixed when the directory is created, because sessions remember
    /// positions within their partition.
    pub fn open(dir: &Path, partitions: usize, capacity: usize) -> Result<Embedded, OpenError> {
        Embedded::open_sized(dir, partitions, capacity, DEFAULT_CACHE_BYTES)
    }

    /// [`Embedded::open`] with at most `cache_bytes` of the file cached in memory (redb's
    /// own default is 1 GiB, which a small server may not have to spare).
    pub fn open_sized(
        dir: &Path,
        partitions: usize,
        capacity: usize,
        cache_bytes: usize,
    ) -> Result<Embedded, OpenError> {
        let shown = dir.display();
        std::fs::create_dir_all(dir).map_err(|e| OpenError(format!("cannot create data directory {shown}: {e}")))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| OpenError(format!("cannot write in data directory {shown}: {e}")))?;
        if lock.try_lock().is_err() {
            return Err(OpenError(format!(
                "data directory {shown} is in use by another botc; stop it, or give this one its own with --data-dir"
            )));
        }
        let path = dir.join("botc.redb");
        let file = Arc::new(DataFile::new(&path, cache_bytes));
        // redb panics on some damage it finds (a page of the wrong type): caught here, it is
        // an error that says what to do, like any other damage.
        let opened = quietly(|| {
            let db = file.connect().map_err(|e| OpenError(format!("cannot open {}: {e}", path.display())))?;
            let fail = |e: StoreError| OpenError(format!("cannot open {}: {e}", path.display()));
            let init = init(&db, partitions).map_err(|e| match e {
                Init::Refused(msg) => OpenError(format!("{}: {msg}", path.display())),
                Init::Store(e) => fail(e),
            })?;
            Ok::<_, OpenError>((db, init))
        });
        let (db, (next, committed, history, replies, identity)) = match opened {
            Ok(result) => result?,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("an inconsistency");
                return Err(OpenError(format!(
                    "{} is damaged ({why}); botc did not start. Restore it from a backup, or move it \
                     aside to start with an empty store (its conversations start over; history.sqlite \
                     keeps their history)",
                    path.display()
                )));
            }
        };
        let signals = Arc::new(Signals {
            parts: next
                .iter()
                .zip(&committed)
                .map(|(&n, &c)| Part { next: AtomicU64::new(n), committed: AtomicU64::new(c), ready: Notify::new() })
                .collect(),
            transcript: std::sync::Mutex::new(HashMap::new()),
            timers: Notify::new(),
            outbox: Notify::new(),
            history: Notify::new(),
            replies: Notify::new(),
            failing: std::sync::Mutex::new(None),
        });
        file.install(db);
        let leases = LeaseTable::default();
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            file: file.clone(),
            identity: identity.0,
            leases: leases.clone(),
            signals: signals.clone(),
            capacity: capacity as u64,
            next,
            committed,
            history,
            replies,
        };
        let handle = std::thread::Builder::new()
            .name("botc-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| OpenError(format!("cannot start the store's writer thread: {e}")))?;
        Ok(Embedded {
            file,
            leases,
            members: Mutex::default(),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            signals,
            identity,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// This store's random name, and whether it was made at this opening (a new or emptied
    /// file, or one from before stores had names).
    pub fn identity(&self) -> (u64, bool) {
        self.identity
    }

    async fn send(&self, kind: JobKind) -> Result<usize, StoreError> {
        let (done, answer) = oneshot::channel();
        let sent = match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(Job { kind, done }).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Closed);
        }
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Moves partition `partition`'s worker position back to `offset` (or the oldest event
    /// still kept), so its events are delivered again. Sessions skip events they have already
    /// applied, so this changes nothing; tests use it to prove that.
    pub async fn rewind(&self, partition: usize, offset: u64) -> Result<(), StoreError> {
        self.send(JobKind::Rewind { partition, offset }).await.map(|_| ())
    }

    /// The unreadable session records set aside so far, oldest first (at most `max`).
    pub fn quarantined(&self, max: usize) -> Result<Vec<Quarantined>, StoreError> {
        read_quarantine(&self.file.begin_read()?, max)
    }

    /// [`Embedded::quarantined`] of the data directory `dir`, opened for reading only (for
    /// `botc quarantine`). redb does not share a file with a process writing it, so this
    /// says to stop botc serve first; `/metrics` counts quarantined sessions meanwhile.
    pub fn quarantined_in(dir: &Path, max: usize) -> Result<Vec<Quarantined>, OpenError> {
        let path = dir.join("botc.redb");
        if !path.exists() {
            return Err(OpenError(format!(
                "{} holds no botc data (no botc.redb); give the --data-dir botc serve used",
                dir.display()
            )));
        }
        let shown = path.display();
        let damaged = |_| OpenError(format!("{shown} is damaged; restore it from a backup"));
        let db = quietly(|| redb::ReadOnlyDatabase::open(&path)).map_err(damaged)?.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError(format!(
                "{shown} is in use by a running botc (botc_sessions_quarantined_total in its /metrics counts \
                 these records); stop botc serve and try again"
            )),
            e => OpenError(format!("cannot open {shown}: {e}")),
        })?;
        quietly(|| {
            let txn = db.begin_read().map_err(|e| OpenError(format!("cannot read {shown}: {e}")))?;
            match txn.open_table(QUARANTINE) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
                Err(e) => Err(OpenError(format!("cannot read {shown}: {e}"))),
                Ok(_) => read_quarantine(&txn, max).map_err(|e| OpenError(format!("cannot read {shown}: {e}"))),
            }
        })
        .map_err(damaged)?
    }

    /// Makes every write to the data file fail with `error` (as a full disk's writes do)
    /// until called with `None`: for tests of what botc does while it cannot write. redb sees
    /// real I/O errors, so this also tests that the store reopens the file afterwards.
    pub fn inject_write_failure(&self, error: Option<&str>) {
        self.file.inject_write_failure(error);
    }

    /// Stops the writer after the jobs already sent; later calls fail with an error.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// The leased partition, if the lease is the newest on it.
    fn part(&self, lease: &Lease) -> Result<(usize, &Part), StoreError> {
        let p = lease.partition().ok_or_else(|| StoreError::Fenced(lease.work.clone()))?;
        let part = self.signals.parts.get(p).ok_or(StoreError::NoPartition(p))?;
        check(&self.leases, lease)?;
        Ok((p, part))
    }
}

fn read_quarantine(txn: &redb::ReadTransaction, max: usize) -> Result<Vec<Quarantined>, StoreError> {
    let table = txn.open_table(QUARANTINE).map_err(io)?;
    let mut out = Vec::new();
    for r in table.iter().map_err(io)?.take(max) {
        let (k, v) = r.map_err(io)?;
        match decode_quarantined(v.value()) {
            Ok(q) => out.push(q),
            Err(e) => tracing::error!(position = k.value(), error = %e, "a quarantine record is unreadable"),
        }
    }
    Ok(out)
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates the tables and reads each partition's next and committed offsets, and the next
/// history position.
#[allow(clippy::type_complexity)]
/// What opening finds: each partition's next and committed offsets, the next history and
/// reply positions, and the store's identity (and whether it was made just now).
type Opened = (Vec<u64>, Vec<u64>, u64, u64, (u64, bool));

fn init(db: &Database, partitions: usize) -> Result<Opened, Init> {
    let txn = db.begin_write().map_err(io)?;
    let (mut next, mut committed) = (vec![0; partitions], vec![0; partitions]);
    let (next_history, next_reply);
    let identity;
    {
        let mut meta = txn.open_table(META).map_err(io)?;
        // A random name for this store, also recorded in history.sqlite: a botc.redb emptied
        // or replaced beside its history is told apart from the one that history belongs to.
        let stored = meta.get("identity").map_err(io)?.map(|v| v.value());
        identity = match stored {
            Some(id) => (id, false),
            None => {
                let id = fastrand::u64(1..);
                meta.insert("identity", id).map_err(io)?;
                (id, true)
            }
        };
        let stored = meta.get("partitions").map_err(io)?.map(|v| v.value());
        match stored {
            Some(n) if n != partitions as u64 => {
                return Err(Init::Refused(format!(
                    "this data directory was created with {n} bus partitions, not {partitions}; \
                     set partitions = {n} under [limits], or use a new data directory"
                )));
            }
            Some(_) => {}
            None => {
                meta.insert("partitions", partitions as u64).map_err(io)?;
            }
        }
        // Format 2 keys conversations by (bot, channel, conversation). A directory from before
        // holds sessions keyed by (bot, conversation), whose channel cannot be told apart.
        // Format 3 adds the reply id index, empty in a format 2 directory until its next
        // reply: a format 2 directory is carried over as it is.
        let format = meta.get("format").map_err(io)?.map(|v| v.value());
        match format {
            Some(FORMAT) => {}
            Some(2) => {
                meta.insert("format", FORMAT).map_err(io)?;
            }
            Some(n) if n > FORMAT => {
                return Err(Init::Refused(format!(
                    "this data directory was written by a newer botc (format {n}; this one knows {FORMAT})"
                )));
            }
            _ => {
                let used = txn.open_table(SESSIONS).map_err(io)?.len().map_err(io)?
                    + txn.open_table(LOG).map_err(io)?.len().map_err(io)?;
                if used > 0 {
                    return Err(Init::Refused(
                        "this data directory was written by an earlier botc whose conversation keys lacked \
                         their channel, and its conversations cannot be carried over; move it aside and \
                         start with an empty --data-dir (the old history.sqlite stays readable with \
                         `botc history --data-dir OLD`)"
                            .into(),
                    ));
                }
                meta.insert("format", FORMAT).map_err(io)?;
            }
        }
        let log = txn.open_table(LOG).map_err(io)?;
        let offsets = txn.open_table(OFFSETS).map_err(io)?;
        for p in 0..partitions {
            committed[p] = offsets.get(p as u32).map_err(io)?.map_or(0, |v| v.value());
            let last = log.range((p as u32, 0)..=(p as u32, u64::MAX)).map_err(io)?.next_back();
            next[p] = match last {
                Some(r) => r.map_err(io)?.0.value().1 + 1,
                None => 0,
            }
            .max(committed[p]);
        }
        txn.open_table(SESSIONS).map_err(io)?;
        txn.open_table(TOUCHED).map_err(io)?;
        txn.open_table(TIMERS).map_err(io)?;
        txn.open_table(TIMER_INDEX).map_err(io)?;
        txn.open_table(MESSAGES).map_err(io)?;
        txn.open_table(REPLY_IDS).map_err(io)?;
        txn.open_table(OUTBOX).map_err(io)?;
        let history = txn.open_table(HISTORY).map_err(io)?;
        next_history = match history.last().map_err(io)? {
            Some((k, _)) => k.value() + 1,
            None => 1,
        };
        txn.open_table(DEDUPE).map_err(io)?;
        txn.open_table(DEDUPE_EXPIRY).map_err(io)?;
        txn.open_table(QUARANTINE).map_err(io)?;
        let replies = txn.open_table(REPLIES).map_err(io)?;
        // Positions are global, so the largest one is the last in some bot's range.
        let mut last = 0;
        for r in replies.iter().map_err(io)? {
            last = last.max(r.map_err(io)?.0.value().1);
        }
        next_reply = last + 1;
    }
    txn.commit().map_err(io)?;
    Ok((next, committed, next_history, next_reply, identity))
}

/// Why a data directory was not opened.
enum Init {
    /// It cannot be used as it is: what to do, for the person starting botc.
    Refused(String),
    Store(StoreError),
}

impl std::convert::From<StoreError> for Init {
    fn from(e: StoreError) -> Init {
        Init::Store(e)
    }
}

pub fn partition_of(key: &str, partitions: usize) -> usize {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher,
    // because positions stored in sessions depend on it.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as usize
}

struct Job {
    kind: JobKind,
    done: oneshot::Sender<Result<usize, StoreError>>,
}

enum JobKind {
    Publish {
        events: Vec<Event>,
    },
    /// Publish unless the event's id has an unexpired dedupe mark; then mark it.
    PublishOnce {
        event: Box<Event>,
        now: u64,
        expires: u64,
    },
    Commit(Arc<Batch>),
    FireTimers {
        lease: Lease,
        now: u64,
    },
    Complete {
        lease: Lease,
        id: String,
        result: Box<Event>,
    },
    Rewind {
        partition: usize,
        offset: u64,
    },
    /// Forget conversations idle since `before`, at most `max`.
    Forget {
        before: u64,
        max: usize,
    },
    /// History up to this position is in the history sink.
    Shipped {
        upto: u64,
    },
    Delivered {
        lease: Lease,
        position: u64,
    },
}

struct Writer {
    file: Arc<DataFile>,
    /// The store's name (see `init`): a file reopened after a failed write must still be it.
    identity: u64,
    leases: LeaseTable,
    signals: Arc<Signals>,
    capacity: u64,
    next: Vec<u64>,
    committed: Vec<u64>,
    /// Position the next history record gets.
    history: u64,
    /// Position the next reply gets.
    replies: u64,
}

struct Tables<'t> {
    log: redb::Table<'t, (u32, u64), &'static [u8]>,
    offsets: redb::Table<'t, u32, u64>,
    sessions: redb::Table<'t, &'static str, &'static [u8]>,
    touched: redb::Table<'t, (u64, &'static str), ()>,
    timers: redb::Table<'t, (u64, &'static str, u32), &'static [u8]>,
    timer_index: redb::Table<'t, (&'static str, u32), u64>,
    messages: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    reply_ids: redb::Table<'t, &'static str, u64>,
    outbox: redb::Table<'t, &'static str, &'static [u8]>,
    history: redb::Table<'t, u64, &'static [u8]>,
    dedupe: redb::Table<'t, &'static str, u64>,
    dedupe_expiry: redb::Table<'t, (u64, &'static str), ()>,
    replies: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    quarantine: redb::Table<'t, u64, &'static [u8]>,
}

/// What a group's transaction changed, for waking readers after it commits.
#[derive(Default)]
struct Touched {
    parts: Vec<usize>,
    /// Conversations whose transcripts grew.
    transcript: Vec<String>,
    timers: bool,
    outbox: bool,
    history: bool,
    replies: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        // Failed groups in a row: logged at the 1st, 2nd, 4th, 8th … so a full disk under
        // load is a few lines, not one per request.
        let mut failures: u64 = 0;
        loop {
            // While writes fail, an empty group each second finds out when they work again,
            // so /readyz recovers even though no events come while it says 503.
            let mut jobs = if failures == 0 {
                match rx.recv() {
                    Ok(job) => vec![job],
                    Err(_) => break,
                }
            } else {
                match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                    Ok(job) => vec![job],
                    Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            while !jobs.is_empty() && jobs.len() < GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let revived = if failures > 0 { self.revive() } else { Ok(()) };
            let (next, committed, history, replies) =
                (self.next.clone(), self.committed.clone(), self.history, self.replies);
            let mut touched = Touched::default();
            let outcome = revived.and_then(|()| self.group(&jobs, &mut touched));
            match outcome {
                Ok(results) => {
                    if failures > 0 {
                        // Ready first, then said: whoever reads the line finds /readyz at 200.
                        *self.signals.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        tracing::warn!(failures, "store writes work again");
                        failures = 0;
                    }
                    for (p, part) in self.signals.parts.iter().enumerate() {
                        part.next.store(self.next[p], Ordering::Release);
                        part.committed.store(self.committed[p], Ordering::Release);
                    }
                    for (job, result) in jobs.into_iter().zip(results) {
                        let _ = job.done.send(result);
                    }
                    self.wake(&touched);
                }
                Err(e) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::error!(error = %e, failures, "store writes fail; events are refused with 503 and /readyz says why until a write works");
                    }
                    *self.signals.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    (self.next, self.committed, self.history, self.replies) = (next, committed, history, replies);
                    for job in jobs {
                        let _ = job.done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Makes the data file usable again after failed writes: when redb has stopped using it
    /// (`PreviousIo`), closes it and opens it again, which repairs it, and takes the offsets
    /// and positions from what is on disk. An error leaves the file closed, to try again.
    fn revive(&mut self) -> Result<(), StoreError> {
        match self.file.begin_write() {
            // Dropped unused: an empty transaction that is never committed.
            Some(Ok(_)) => return Ok(()),
            Some(Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo))) | None => {}
            Some(Err(e)) => return Err(io(e)),
        }
        self.file.close();
        let failed = |why: String| StoreError::Io(format!("cannot reopen the data file after a failed write: {why}"));
        let damaged = |_| failed("it is damaged; stop botc and restore it from a backup".into());
        let db = quietly(|| self.file.connect()).map_err(damaged)?.map_err(|e| failed(e.to_string()))?;
        let opened = quietly(|| init(&db, self.next.len())).map_err(damaged)?;
        let (next, committed, history, replies, (identity, _)) = opened.map_err(|e| match e {
            Init::Refused(why) => failed(why),
            Init::Store(e) => failed(e.to_string()),
        })?;
        if identity != self.identity {
            return Err(failed(format!("{} was replaced while botc ran; restart botc", self.file.path().display())));
        }
        (self.next, self.committed, self.history, self.replies) = (next, committed, history, replies);
        self.file.install(db);
        tracing::warn!("reopened the data file after failed writes");
        Ok(())
    }

    fn wake(&self, t: &Touched) {
        for &p in &t.parts {
            self.signals.parts[p].ready.notify_one();
        }
        if !t.transcript.is_empty() {
            let mut waiting = self.signals.transcript.lock().unwrap_or_else(|e| e.into_inner());
            for key in &t.transcript {
                // Later readers wait on a new one: the map holds only conversations waited on.
                if let Some(n) = waiting.remove(key) {
                    n.notify_waiters();
                }
            }
        }
        if t.timers {
            self.signals.timers.notify_one();
        }
        if t.outbox {
            self.signals.outbox.notify_one();
        }
        if t.history {
            self.signals.history.notify_one();
        }
        if t.replies {
            self.signals.replies.notify_waiters();
        }
    }

    /// Applies every job in one transaction. A job refused for its own reasons (a full
    /// partition, a conflict) checks before it writes, so it leaves nothing behind; a storage
    /// error fails the whole group.
    fn group(&mut self, jobs: &[Job], touched: &mut Touched) -> Result<Vec<Result<usize, StoreError>>, StoreError> {
        let txn = self.file.begin_write().ok_or_else(super::datafile::reopening)?.map_err(io)?;
        let mut results = Vec::with_capacity(jobs.len());
        {
            let mut t = Tables {
                log: txn.open_table(LOG).map_err(io)?,
                offsets: txn.open_table(OFFSETS).map_err(io)?,
                sessions: txn.open_table(SESSIONS).map_err(io)?,
                touched: txn.open_table(TOUCHED).map_err(io)?,
                timers: txn.open_table(TIMERS).map_err(io)?,
                timer_index: txn.open_table(TIMER_INDEX).map_err(io)?,
                messages: txn.open_table(MESSAGES).map_err(io)?,
                reply_ids: txn.open_table(REPLY_IDS).map_err(io)?,
                outbox: txn.open_table(OUTBOX).map_err(io)?,
                history: txn.open_table(HISTORY).map_err(io)?,
                dedupe: txn.open_table(DEDUPE).map_err(io)?,
                dedupe_expiry: txn.open_table(DEDUPE_EXPIRY).map_err(io)?,
                replies: txn.open_table(REPLIES).map_err(io)?,
                quarantine: txn.open_table(QUARANTINE).map_err(io)?,
            };
            for job in jobs {
                results.push(self.apply(&mut t, &job.kind, touched)?);
            }
        }
        txn.commit().map_err(io)?;
        Ok(results)
    }

    fn apply(
        &mut self,
        t: &mut Tables<'_>,
        job: &JobKind,
        touched: &mut Touched,
    ) -> Result<Result<usize, StoreError>, StoreError> {
        match job {
            JobKind::Publish { events } => {
                let mut adding = vec![0u64; self.next.len()];
                for e in events {
                    adding[partition_of(&e.key(), self.next.len())] += 1;
                }
                let full = adding
                    .iter()
                    .enumerate()
                    .any(|(p, &n)| n > 0 && self.next[p] - self.committed[p] + n > self.capacity);
                if full {
                    return Ok(Err(StoreError::Full));
                }
                for e in events {
                    self.append(t, e, touched)?;
                }
                Ok(Ok(events.len()))
            }
            JobKind::PublishOnce { event, now, expires } => {
                let seen = t.dedupe.get(event.id.as_str()).map_err(io)?.map(|v| v.value());
                if seen.is_some_and(|until| until > *now) {
                    return Ok(Ok(0));
                }
                let p = partition_of(&event.key(), self.next.len());
                if self.next[p] - self.committed[p] >= self.capacity {
                    return Ok(Err(StoreError::Full));
                }
                if let Some(old) = seen {
                    t.dedupe_expiry.remove((old, event.id.as_str())).map_err(io)?;
                }
                t.dedupe.insert(event.id.as_str(), *expires).map_err(io)?;
                t.dedupe_expiry.insert((*expires, event.id.as_str()), ()).map_err(io)?;
                self.append(t, event, touched)?;
                Ok(Ok(1))
            }
            JobKind::Commit(batch) => self.commit(t, batch, touched),
            JobKind::FireTimers { lease, now } => {
                if let Err(e) = check(&self.leases, lease) {
                    return Ok(Err(e));
                }
                let mut due = Vec::new();
                for r in t.timers.range(..(now.saturating_add(1), "", 0u32)).map_err(io)? {
                    let (k, v) = r.map_err(io)?;
                    let (at, key, timer) = k.value();
                    due.push((at, key.to_string(), timer, v.value().to_vec()));
                }
                for (at, key, timer, bytes) in &due {
                    t.timers.remove((*at, key.as_str(), *timer)).map_err(io)?;
                    t.timer_index.remove((key.as_str(), *timer)).map_err(io)?;
                    match Event::decode(bytes) {
                        Ok(e) => self.append(t, &e, touched)?,
                        Err(e) => tracing::error!(conversation = %key, error = %e, "a stored timer is unreadable"),
                    }
                }
                // Dedupe marks that have expired go too (a bounded number per call).
                let mut expired = Vec::new();
                for r in t.dedupe_expiry.range(..(now.saturating_add(1), "")).map_err(io)?.take(10_000) {
                    let (k, _) = r.map_err(io)?;
                    let (at, id) = k.value();
                    expired.push((at, id.to_string()));
                }
                for (at, id) in &expired {
                    t.dedupe_expiry.remove((*at, id.as_str())).map_err(io)?;
                    t.dedupe.remove(id.as_str()).map_err(io)?;
                }
                Ok(Ok(due.len()))
            }
            JobKind::Complete { lease, id, result } => {
                if let Err(e) = check(&self.leases, lease) {
                    return Ok(Err(e));
                }
                if t.outbox.remove(id.as_str()).map_err(io)?.is_none() {
                    // Completed before (a retry after a crash): publish nothing twice.
                    return Ok(Ok(0));
                }
                self.append(t, result, touched)?;
                Ok(Ok(1))
            }
            JobKind::Rewind { partition, offset } => {
                let Some(&next) = self.next.get(*partition) else {
                    return Ok(Err(StoreError::NoPartition(*partition)));
                };
                let p = *partition as u32;
                let oldest = match t.log.range((p, 0)..=(p, u64::MAX)).map_err(io)?.next() {
                    Some(r) => r.map_err(io)?.0.value().1,
                    None => next,
                };
                let to = (*offset).clamp(oldest, self.committed[*partition]);
                t.offsets.insert(p, to).map_err(io)?;
                self.committed[*partition] = to;
                Ok(Ok(0))
            }
            JobKind::Delivered { lease, position } => {
                if let Err(e) = check(&self.leases, lease) {
                    return Ok(Err(e));
                }
                let Work::Replies(bot) = &lease.work else { return Ok(Err(StoreError::Fenced(lease.work.clone()))) };
                let removed = t.replies.remove((bot.as_str(), *position)).map_err(io)?.map(|v| decode_reply(v.value()));
                if let Some(Ok(reply)) = removed {
                    t.reply_ids.remove(reply.id.as_str()).map_err(io)?;
                }
                Ok(Ok(0))
            }
            JobKind::Forget { before, max } => {
                let mut idle = Vec::new();
                for r in t.touched.range(..(*before, "")).map_err(io)?.take(*max) {
                    let (k, _) = r.map_err(io)?;
                    let (at, key) = k.value();
                    idle.push((at, key.to_string()));
                }
                for (at, key) in &idle {
                    let k = key.as_str();
                    t.touched.remove((*at, k)).map_err(io)?;
                    t.sessions.remove(k).map_err(io)?;
                    t.messages.retain_in((k, 0)..=(k, u64::MAX), |_, _| false).map_err(io)?;
                    let mut timers = Vec::new();
                    for r in t.timer_index.range((k, 0)..=(k, u32::MAX)).map_err(io)? {
                        let (tk, due) = r.map_err(io)?;
                        timers.push((tk.value().1, due.value()));
                    }
                    for (timer, due) in timers {
                        t.timer_index.remove((k, timer)).map_err(io)?;
                        t.timers.remove((due, k, timer)).map_err(io)?;
                    }
                }
                Ok(Ok(idle.len()))
            }
            JobKind::Shipped { upto } => {
                t.history.retain_in(..=*upto, |_, _| false).map_err(io)?;
                Ok(Ok(0))
            }
        }
    }

    fn append(&mut self, t: &mut Tables<'_>, e: &Event, touched: &mut Touched) -> Result<(), StoreError> {
        let p = partition_of(&e.key(), self.next.len());
        t.log.insert((p as u32, self.next[p]), e.encode().as_slice()).map_err(io)?;
        self.next[p] += 1;
        if !touched.parts.contains(&p) {
            touched.parts.push(p);
        }
        Ok(())
    }

    fn commit(
        &mut self,
        t: &mut Tables<'_>,
        b: &Batch,
        touched: &mut Touched,
    ) -> Result<Result<usize, StoreError>, StoreError> {
        let Some(partition) = b.lease.partition() else { return Ok(Err(StoreError::Fenced(b.lease.work.clone()))) };
        let Some(&committed) = self.committed.get(partition) else {
            return Ok(Err(StoreError::NoPartition(partition)));
        };
        if let Err(e) = check(&self.leases, &b.lease) {
            return Ok(Err(e));
        }
        // Compare-and-set: every session must still be as the worker loaded it. One
        // transaction, so a conflict writes nothing (one outcome the ports' order allows).
        let mut was_touched = Vec::with_capacity(b.sessions.len());
        let mut conflicts = Vec::new();
        for w in &b.sessions {
            let now = t.sessions.get(w.key.as_str()).map_err(io)?.map(|v| decode_stored(v.value(), 0));
            let (found, at) = match now {
                None => (Expected::Absent, None),
                Some(Ok(s)) => (Expected::Version(s.version), Some(s.touched_at)),
                Some(Err(_)) => (Expected::Unreadable, None),
            };
            if found != w.expected {
                conflicts.push(w.key.clone());
            }
            was_touched.push(at);
        }
        if !conflicts.is_empty() {
            return Ok(Err(StoreError::Conflict(conflicts)));
        }
        if !b.quarantined.is_empty() {
            let next = match t.quarantine.last().map_err(io)? {
                Some((k, _)) => k.value() + 1,
                None => 1,
            };
            for (position, q) in (next..).zip(&b.quarantined) {
                t.quarantine.insert(position, encode_quarantined(q).as_slice()).map_err(io)?;
            }
        }
        for (w, at) in b.sessions.iter().zip(was_touched) {
            let k = w.key.as_str();
            t.sessions.insert(k, encode_stored(&w.stored).as_slice()).map_err(io)?;
            // The idle index moves only when the minute changes (see the worker).
            if at != Some(w.stored.touched_at) {
                if let Some(at) = at {
                    t.touched.remove((at, k)).map_err(io)?;
                }
                t.touched.insert((w.stored.touched_at, k), ()).map_err(io)?;
            }
        }
        // An entry committed again is among its conversation's latest entries (a batch is
        // written whole or not at all, so a second copy can only come from the batch after
        // it): per conversation, its latest entries are read once per batch and their ids
        // compared as bytes with the batch's.
        let mut order: Vec<&Message> = b.messages.iter().collect();
        order.sort_by(|x, y| x.key.cmp(&y.key)); // stable: each conversation's own order stays
        for batch in order.chunk_by(|x, y| x.key == y.key) {
            let k = batch[0].key.as_str();
            let mut present = vec![false; batch.len()];
            let mut last = 0;
            for r in t.messages.range((k, 0)..=(k, u64::MAX)).map_err(io)?.rev().take(RECENT) {
                let (key, v) = r.map_err(io)?;
                last = last.max(key.value().1);
                if let Ok(id) = entry_id(v.value()) {
                    for (m, seen) in batch.iter().zip(present.iter_mut()) {
                        *seen |= m.entry.id.as_bytes() == id;
                    }
                }
            }
            for (i, m) in batch.iter().enumerate() {
                if present[i] || batch[..i].iter().any(|x| x.entry.id == m.entry.id) {
                    continue;
                }
                last += 1;
                let entry = Entry { seq: last, ..m.entry.clone() };
                t.messages.insert((k, last), encode_entry(&entry).as_slice()).map_err(io)?;
                if touched.transcript.last() != Some(&m.key) {
                    touched.transcript.push(m.key.clone());
                }
            }
        }
        for change in &b.timers {
            match change {
                TimerChange::Start { at, event } => {
                    let key = event.key();
                    let timer = match event.kind {
                        botc_runtime::vm::Input::Timer { timer } => timer,
                        _ => continue,
                    };
                    t.timers.insert((*at, key.as_str(), timer), event.encode().as_slice()).map_err(io)?;
                    t.timer_index.insert((key.as_str(), timer), *at).map_err(io)?;
                    touched.timers = true;
                }
                TimerChange::Cancel { key, timer } => {
                    let at = t.timer_index.remove((key.as_str(), *timer)).map_err(io)?.map(|v| v.value());
                    if let Some(at) = at {
                        t.timers.remove((at, key.as_str(), *timer)).map_err(io)?;
                    }
                }
            }
        }
        for item in &b.outbox {
            t.outbox.insert(item.id.as_str(), encode_item(item).as_slice()).map_err(io)?;
            touched.outbox = true;
        }
        for r in &b.history {
            t.history.insert(self.history, encode_record(r).as_slice()).map_err(io)?;
            self.history += 1;
            touched.history = true;
        }
        for r in &b.replies {
            if t.reply_ids.get(r.id.as_str()).map_err(io)?.is_some() {
                continue;
            }
            t.reply_ids.insert(r.id.as_str(), self.replies).map_err(io)?;
            t.replies.insert((r.bot.as_str(), self.replies), encode_reply(r).as_slice()).map_err(io)?;
            self.replies += 1;
            touched.replies = true;
        }
        let p = partition as u32;
        let next = b.next_offset.max(committed);
        t.offsets.insert(p, next).map_err(io)?;
        // Forget events far enough behind the position.
        let keep_from = next.saturating_sub(RETAIN);
        if committed.saturating_sub(RETAIN) < keep_from {
            t.log.retain_in((p, 0)..(p, keep_from), |_, _| false).map_err(io)?;
        }
        self.committed[partition] = next;
        Ok(Ok(b.sessions.len()))
    }
}

impl Embedded {
    /// Reads in a transaction of its own, at once (redb readers never wait for the writer;
    /// a read is as quick as a lock), as an answer for the async ports.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Fut<'_, Result<T, StoreError>> {
        let result = self.file.begin_read().and_then(|txn| f(&txn));
        Box::pin(std::future::ready(result))
    }
}

impl Leases for Embedded {
    fn acquire<'a>(
        &'a self,
        work: Work,
        holder: &'a str,
        now_ms: u64,
        ttl: std::time::Duration,
    ) -> Fut<'a, Result<Option<Lease>, StoreError>> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let until_ms = now_ms.saturating_add(ttl.as_millis() as u64);
        let granted = match leases.get(&work) {
            Some(h) if h.until_ms > now_ms && h.holder != holder => None,
            held => {
                let epoch = held.map_or(1, |h| h.epoch + 1);
                leases.insert(work.clone(), Held { epoch, until_ms, holder: holder.to_string() });
                Some(Lease { work, epoch })
            }
        };
        Box::pin(std::future::ready(Ok(granted)))
    }

    fn renew<'a>(&'a self, lease: &'a Lease, now_ms: u64, ttl: std::time::Duration) -> Fut<'a, Result<(), StoreError>> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let renewed = match leases.get_mut(&lease.work) {
            Some(h) if h.epoch == lease.epoch => {
                h.until_ms = now_ms.saturating_add(ttl.as_millis() as u64);
                Ok(())
            }
            _ => Err(StoreError::Fenced(lease.work.clone())),
        };
        Box::pin(std::future::ready(renewed))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<(), StoreError>> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = leases.get_mut(&lease.work)
            && h.epoch == lease.epoch
        {
            h.until_ms = 0;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn members<'a>(
        &'a self,
        group: &'a str,
        holder: &'a str,
        now_ms: u64,
        ttl: std::time::Duration,
    ) -> Fut<'a, Result<usize, StoreError>> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let group = members.entry(group.to_string()).or_default();
        group.insert(holder.to_string(), now_ms.saturating_add(ttl.as_millis() as u64));
        group.retain(|_, until| *until > now_ms);
        Box::pin(std::future::ready(Ok(group.len())))
    }
}

impl Bus for Embedded {
    fn partitions(&self) -> usize {
        self.signals.parts.len()
    }

    fn partition_of(&self, key: &str) -> usize {
        partition_of(key, self.signals.parts.len())
    }

    fn publish(&self, events: Vec<Event>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move { self.send(JobKind::Publish { events }).await.map(|_| ()) })
    }

    fn publish_once(&self, event: Event, ttl: std::time::Duration) -> Fut<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            // The gateway's clock, as it stamped the event.
            let now = event.received_at;
            let expires = now.saturating_add(ttl.as_secs().max(1));
            self.send(JobKind::PublishOnce { event: Box::new(event), now, expires }).await.map(|n| n == 1)
        })
    }

    fn committed<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.part(lease)?.1.committed.load(Ordering::Acquire)) })
    }

    fn fetch<'a>(&'a self, lease: &'a Lease, from: u64, max: usize) -> Fut<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            loop {
                // Checked on every wake-up, so a fenced worker stops at its next fetch.
                let (partition, part) = self.part(lease)?;
                let ready = part.ready.notified();
                if part.next.load(Ordering::Acquire) > from {
                    let txn = self.file.begin_read()?;
                    let log = txn.open_table(LOG).map_err(io)?;
                    let p = partition as u32;
                    let mut out = Vec::new();
                    for r in log.range((p, from)..=(p, u64::MAX)).map_err(io)?.take(max) {
                        let (k, v) = r.map_err(io)?;
                        let offset = k.value().1;
                        match Event::decode(v.value()) {
                            Ok(event) => out.push(Delivery { offset, event }),
                            // Not deliverable; the worker's position moves past it anyway.
                            Err(e) => {
                                tracing::error!(partition, offset, error = %e, "an event on the bus is unreadable");
                                out.push(Delivery { offset, event: Event::unreadable(offset) });
                            }
                        }
                    }
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
                ready.await;
            }
        })
    }

    fn ready(&self) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let open = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            let writing =
                self.writer.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|h| !h.is_finished());
            if !(open && writing) {
                return Err(StoreError::Closed);
            }
            if let Some(e) = self.signals.failing.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Err(StoreError::Io(format!("the last write failed ({e}); retrying with every event")));
            }
            self.read(|txn| txn.open_table(OFFSETS).map(|_| ()).map_err(io)).await
        })
    }

    fn depth(&self) -> Fut<'_, Result<u64, StoreError>> {
        let depth = self
            .signals
            .parts
            .iter()
            .map(|p| p.next.load(Ordering::Acquire).saturating_sub(p.committed.load(Ordering::Acquire)))
            .sum();
        Box::pin(std::future::ready(Ok(depth)))
    }
}

impl SessionStore for Embedded {
    fn load<'a>(&'a self, keys: &'a [String]) -> Fut<'a, Result<HashMap<String, Found>, StoreError>> {
        Box::pin(async move {
            let txn = self.file.begin_read()?;
            let table = txn.open_table(SESSIONS).map_err(io)?;
            let mut out = HashMap::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = table.get(k.as_str()).map_err(io)? {
                    let found = match decode_stored(v.value(), self.partition_of(k) as u32) {
                        Ok(s) => Found::Stored(s),
                        Err(e) => Found::Unreadable { raw: v.value().to_vec(), error: e.to_string() },
                    };
                    out.insert(k.clone(), found);
                }
            }
            Ok(out)
        })
    }

    fn count(&self) -> Fut<'_, Result<u64, StoreError>> {
        self.read(|txn| txn.open_table(SESSIONS).map_err(io)?.len().map_err(io))
    }

    fn forget_idle(&self, before: u64, max: usize) -> Fut<'_, Result<usize, StoreError>> {
        Box::pin(self.send(JobKind::Forget { before, max }))
    }

    fn scan<'a>(&'a self, prefix: &'a str, max: usize) -> Fut<'a, Result<Vec<(String, Stored)>, StoreError>> {
        Box::pin(async move {
            let txn = self.file.begin_read()?;
            let table = txn.open_table(SESSIONS).map_err(io)?;
            let mut out = Vec::new();
            for r in table.range(prefix..).map_err(io)? {
                let (k, v) = r.map_err(io)?;
                let key = k.value();
                if !key.starts_with(prefix) || out.len() >= max {
                    break;
                }
                if let Ok(s) = decode_stored(v.value(), self.partition_of(key) as u32) {
                    out.push((key.to_string(), s));
                }
            }
            Ok(out)
        })
    }
}

impl Committer for Embedded {
    fn commit(&self, batch: Arc<Batch>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move { self.send(JobKind::Commit(batch)).await.map(|_| ()) })
    }
}

impl TimerStore for Embedded {
    fn fire_due<'a>(&'a self, lease: &'a Lease, now: u64) -> Fut<'a, Result<usize, StoreError>> {
        Box::pin(self.send(JobKind::FireTimers { lease: lease.clone(), now }))
    }

    fn next_due(&self) -> Fut<'_, Result<Option<u64>, StoreError>> {
        self.read(|txn| {
            let table = txn.open_table(TIMERS).map_err(io)?;
            Ok(table.first().map_err(io)?.map(|(k, _)| k.value().0))
        })
    }

    fn pending(&self) -> Fut<'_, Result<u64, StoreError>> {
        self.read(|txn| txn.open_table(TIMERS).map_err(io)?.len().map_err(io))
    }

    fn scheduled(&self) -> Fut<'_, ()> {
        Box::pin(self.signals.timers.notified())
    }
}

impl Transcript for Embedded {
    fn after<'a>(&'a self, key: &'a str, seq: u64) -> Fut<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let txn = self.file.begin_read()?;
            let table = txn.open_table(MESSAGES).map_err(io)?;
            let mut out = Vec::new();
            for r in table.range((key, seq.saturating_add(1))..=(key, u64::MAX)).map_err(io)? {
                let (k, v) = r.map_err(io)?;
                match decode_entry(k.value().1, v.value()) {
                    Ok(e) => out.push(e),
                    Err(e) => tracing::error!(conversation = %key, error = %e, "a stored message is unreadable"),
                }
            }
            Ok(out)
        })
    }

    fn changed<'a>(&'a self, key: &'a str) -> Fut<'a, ()> {
        let mut waiting = self.signals.transcript.lock().unwrap_or_else(|e| e.into_inner());
        // Readers that gave up (a long poll's time ran out) leave their entry behind: swept
        // when there are many, keeping those someone still waits on.
        if waiting.len() >= 10_000 {
            waiting.retain(|_, n| Arc::strong_count(n) > 1);
        }
        let n = waiting.entry(key.to_string()).or_insert_with(|| Arc::new(Notify::new())).clone();
        // Created now, so a commit between this call and the first poll still wakes it.
        let notified = n.notified_owned();
        Box::pin(notified)
    }
}

impl Outbox for Embedded {
    fn pending<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<OutboxItem>, StoreError>> {
        Box::pin(async move {
            check(&self.leases, lease)?;
            self.read(move |txn| {
                let table = txn.open_table(OUTBOX).map_err(io)?;
                let mut out = Vec::new();
                for r in table.iter().map_err(io)?.take(max) {
                    let (k, v) = r.map_err(io)?;
                    match decode_item(v.value()) {
                        Ok(item) => out.push(item),
                        Err(e) => tracing::error!(item = %k.value(), error = %e, "a stored outbox item is unreadable"),
                    }
                }
                Ok(out)
            })
            .await
        })
    }

    fn complete<'a>(&'a self, lease: &'a Lease, id: String, result: Event) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.send(JobKind::Complete { lease: lease.clone(), id, result: Box::new(result) }).await.map(|_| ())
        })
    }

    fn added(&self) -> Fut<'_, ()> {
        Box::pin(self.signals.outbox.notified())
    }
}

impl HistoryQueue for Embedded {
    fn unshipped(&self, max: usize) -> Fut<'_, Result<Vec<(u64, HistoryRecord)>, StoreError>> {
        self.read(move |txn| {
            let table = txn.open_table(HISTORY).map_err(io)?;
            let mut out = Vec::new();
            for r in table.iter().map_err(io)?.take(max) {
                let (k, v) = r.map_err(io)?;
                match decode_record(v.value()) {
                    Ok(rec) => out.push((k.value(), rec)),
                    Err(e) => {
                        tracing::error!(position = k.value(), error = %e, "a stored history record is unreadable")
                    }
                }
            }
            Ok(out)
        })
    }

    fn shipped(&self, upto: u64) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move { self.send(JobKind::Shipped { upto }).await.map(|_| ()) })
    }

    fn recorded(&self) -> Fut<'_, ()> {
        Box::pin(self.signals.history.notified())
    }
}

impl ReplyQueue for Embedded {
    fn waiting<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<(u64, QueuedReply)>, StoreError>> {
        Box::pin(async move {
            check(&self.leases, lease)?;
            let Work::Replies(bot) = &lease.work else { return Err(StoreError::Fenced(lease.work.clone())) };
            let bot = bot.clone();
            self.read(move |txn| {
                let table = txn.open_table(REPLIES).map_err(io)?;
                let mut out = Vec::new();
                let b = bot.as_str();
                for r in table.range((b, 0)..=(b, u64::MAX)).map_err(io)?.take(max) {
                    let (k, v) = r.map_err(io)?;
                    let position = k.value().1;
                    match decode_reply(v.value()) {
                        Ok(reply) => out.push((position, reply)),
                        Err(e) => tracing::error!(bot = b, position, error = %e, "a stored reply is unreadable"),
                    }
                }
                Ok(out)
            })
            .await
        })
    }

    fn delivered<'a>(&'a self, lease: &'a Lease, position: u64) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move { self.send(JobKind::Delivered { lease: lease.clone(), position }).await.map(|_| ()) })
    }

    fn queued(&self) -> Fut<'_, ()> {
        Box::pin(self.signals.replies.notified())
    }

    fn depth(&self) -> Fut<'_, Result<u64, StoreError>> {
        self.read(|txn| txn.open_table(REPLIES).map_err(io)?.len().map_err(io))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_across_builds() {
        // Sessions remember positions within a partition, so this mapping must never change.
        // FNV-1a of the key, computed independently.
        assert_eq!((partition_of("pizza/alice", 4), partition_of("pizza/alice", 7)), (2, 3));
        assert_eq!((partition_of("shop/c1", 4), partition_of("shop/c1", 7)), (2, 1));
        let spread: std::collections::HashSet<usize> = (0..100).map(|i| partition_of(&format!("bot/{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
