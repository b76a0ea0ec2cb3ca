//! The worker role: its pure core driven without HTTP, and the worker and its supervisor
//! against stores that fail, panic or hold unreadable records.

use crate::harness::{self, Server};
use crate::load;
use botc_runtime::Input;
use botc_runtime::clock::ManualClock;
use botc_serve::ports::{
    Batch, Bus, Committer, Delivery, Expected, Found, Fut, Lease, Leases, SessionStore, StoreError, Stored,
    TimerChange, Work,
};
use botc_serve::{Bot, Bots, Core, Embedded, Event, Metrics, Options, Worker};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const FLOW: &str = r#"
flow: shop
start: ask_size
vars:
  size: text
nodes:
  ask_size:
    ask: "Which size?"
    into: size
    expect: { choice: [small, large] }
    next: pause
  pause:
    wait: 1h
    next: done
  done:
    end:
"#;

fn event(id: &str, conversation: &str, kind: Input, received_at: u64) -> Event {
    Event {
        id: id.into(),
        platform: "web".into(),
        bot: "shop".into(),
        conversation: conversation.into(),
        user_id: format!("web:{conversation}"),
        user_name: "Ada".into(),
        user_language: "pt-BR".into(),
        kind,
        received_at,
        reply_to: String::new(),
    }
}

fn partition0() -> Lease {
    Lease { work: Work::Partition(0), epoch: 1 }
}

/// The flow registry in a data directory, as `botc serve` opens it.
async fn registry(dir: &std::path::Path) -> Arc<botc_serve::SqliteHistory> {
    Arc::new(botc_serve::SqliteHistory::open(&botc_serve::history_path(dir)).await.expect("registry"))
}

/// A worker's core for the shop bot, on a clock far from any event's time.
fn core() -> Core {
    Core {
        bots: Arc::new(Bots::new(vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))])),
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(ManualClock::at(9_000_000_000_000)),
    }
}

#[test]
fn the_vm_runs_on_the_events_time_so_doing_a_batch_again_gives_the_same_batch() {
    let core = core();
    let deliveries = vec![
        Delivery { offset: 0, event: event("e1", "c1", Input::Text("hi".into()), 1_000) },
        Delivery { offset: 1, event: event("e2", "c1", Input::Button("large".into()), 1_010) },
    ];
    let batch = core.process(partition0(), 2, deliveries.clone(), HashMap::new());
    // The `wait: 1h` timer counts from the second event's time, not the worker's clock.
    let starts: Vec<u64> = batch
        .timers
        .iter()
        .filter_map(|t| match t {
            TimerChange::Start { at, .. } => Some(*at),
            TimerChange::Cancel { .. } => None,
        })
        .collect();
    assert_eq!(starts, [1_010 + 3600]);
    assert!(batch.history.iter().all(|r| r.at == 1_000 || r.at == 1_010), "{:#?}", batch.history);
    assert_eq!(batch.sessions[0].stored.touched_at, 960, "the last event's minute");
    assert_eq!(core.process(partition0(), 2, deliveries, HashMap::new()), batch);
}

#[test]
fn an_unreadable_session_is_quarantined_and_its_conversation_starts_over() {
    let core = core();
    let raw = vec![0xff, 0x01, 0x02];
    let stored =
        HashMap::from([("shop/web/c1".to_string(), Found::Unreadable { raw: raw.clone(), error: "garbage".into() })]);
    let deliveries = vec![Delivery { offset: 7, event: event("e1", "c1", Input::Text("hi".into()), 1_000) }];
    let batch = core.process(partition0(), 8, deliveries, stored);
    assert_eq!(batch.quarantined.len(), 1);
    assert_eq!((batch.quarantined[0].raw.as_slice(), batch.quarantined[0].at), (raw.as_slice(), 1_000));
    let write = &batch.sessions[0];
    // Written over the unreadable record only if it is still the one that was read.
    assert_eq!(write.expected, Expected::Unreadable);
    assert!(write.stored.version < 10, "a fresh version, not a sentinel: {}", write.stored.version);
    assert_eq!(write.stored.applied, 8);
    assert_eq!(core.metrics.quarantined.get(), 1);
    let asked = batch.messages.iter().any(|m| m.entry.text == "Which size?");
    assert!(asked, "the conversation started over: {:#?}", batch.messages);
}

/// A committer that always fails, counting its calls.
struct Broken(AtomicU64, tokio::sync::Notify);

impl Committer for Broken {
    fn commit(&self, _: Arc<Batch>) -> Fut<'_, Result<(), StoreError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.notify_one();
        Box::pin(async { Err(StoreError::Io("disk on fire".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_store_keeps_failing_still_stops_when_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(Embedded::open(dir.path(), 1, 100).expect("store"));
    store.publish(vec![event("e1", "c1", Input::Text("hi".into()), 1_000)]).await.expect("published");
    let broken = Arc::new(Broken(AtomicU64::new(0), tokio::sync::Notify::new()));
    let worker = Arc::new(Worker {
        core: core(),
        bus: store.clone(),
        sessions: store.clone(),
        committer: broken.clone(),
        flows: registry(dir.path()).await,
        environment: None,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(harness::lease(&store, Work::Partition(0)).await, stopped));
    let failed = broken.1.notified();
    if broken.0.load(Ordering::SeqCst) == 0 {
        tokio::time::timeout(Duration::from_secs(10), failed).await.expect("the worker tried to commit");
    }
    // It now waits to retry on a clock that never moves; a stop must still end it.
    stop.send(true).expect("the worker listens");
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the worker stopped").expect("no panic");
    assert_eq!(broken.0.load(Ordering::SeqCst), 1);
}

/// A session store whose first `load` panics, as a bug in a worker would.
struct PanicsOnce(Arc<Embedded>, AtomicBool);

impl SessionStore for PanicsOnce {
    fn load<'a>(&'a self, keys: &'a [String]) -> Fut<'a, Result<HashMap<String, Found>, StoreError>> {
        if !self.1.swap(true, Ordering::SeqCst) {
            panic!("a bug in the worker");
        }
        self.0.load(keys)
    }
    fn count(&self) -> Fut<'_, Result<u64, StoreError>> {
        self.0.count()
    }
    fn scan<'a>(&'a self, prefix: &'a str, max: usize) -> Fut<'a, Result<Vec<(String, Stored)>, StoreError>> {
        self.0.scan(prefix, max)
    }
    fn forget_idle(&self, before: u64, max: usize) -> Fut<'_, Result<usize, StoreError>> {
        self.0.forget_idle(before, max)
    }
}

async fn get(s: &Server, path: &str) -> (u16, String) {
    let r = s.client.get(format!("{}{path}", s.base)).send().await.expect("get");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_worker_is_restarted_named_in_readyz_and_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let s = harness::start_with(bots, Options::default(), 100, dir.path(), clock.clone(), |mut p, store| {
        p.sessions = Arc::new(PanicsOnce(store.clone(), AtomicBool::new(false)));
        p
    })
    .await;
    assert_eq!(get(&s, "/readyz").await, (200, "ready\n".into()));
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hi"}"#).await;
    assert_eq!(r.status(), 202);
    // The worker of c1's partition panics on its first batch and waits out its back-off on
    // a clock that does not move: until then, /readyz names it.
    let partition = s.store.partition_of("shop/web/c1");
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ready = get(&s, "/readyz").await;
            if ready.0 == 503 {
                return ready;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the worker went down");
    assert_eq!(ready.0, 503, "{ready:?}");
    assert!(ready.1.contains(&format!("worker {partition} (failed 1 time(s) in a row)")), "{ready:?}");
    assert!(s.metric(&format!("botc_role_restarts_total{{role=\"worker {partition}\"}} 1")).await);
    // Time moves past the back-off: the worker runs again and the event is answered.
    clock.advance(Duration::from_secs(120));
    let mut said = Vec::new();
    for _ in 0..5 {
        let v: Value = s.get("/api/bots/shop/conversations/c1/messages?wait=5").await.json().await.expect("json");
        said = v["messages"].as_array().cloned().unwrap_or_default();
        if said.iter().any(|m| m["text"] == "Which size?") {
            break;
        }
    }
    assert!(said.iter().any(|m| m["text"] == "Which size?"), "{said:#?}");
    assert_eq!(get(&s, "/readyz").await, (200, "ready\n".into()));
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_session_on_disk_does_not_stall_its_partition() {
    let dir = tempfile::tempdir().expect("dir");
    let bots = || vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let s = harness::start(bots(), Options::default(), 100, dir.path()).await;
    for c in ["c1", "c2"] {
        s.post(&format!("/api/bots/shop/conversations/{c}/messages"), r#"{"text": "hi"}"#).await;
    }
    for c in ["c1", "c2"] {
        s.poll_until("shop", c, |m| m.iter().any(|m| m["text"] == "Which size?")).await;
    }
    s.shut_down().await;
    // Damage c1's record on disk, as a bad disk or a bug would.
    {
        const SESSIONS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("sessions");
        let db = redb::Database::open(dir.path().join("botc.redb")).expect("opens");
        let txn = db.begin_write().expect("txn");
        txn.open_table(SESSIONS).expect("table").insert("shop/web/c1", [0xee, 0x00, 0x01].as_slice()).expect("insert");
        txn.commit().expect("commit");
    }
    let s = harness::start(bots(), Options::default(), 100, dir.path()).await;
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hello again"}"#).await;
    s.post("/api/bots/shop/conversations/c2/messages", r#"{"button": "large"}"#).await;
    // Both are answered: c1 starts over (asked again), c2 carries on to its timer.
    s.poll_until("shop", "c1", |m| m.iter().filter(|m| m["text"] == "Which size?").count() == 2).await;
    s.poll_until("shop", "c2", |m| m.iter().any(|m| m["text"] == "large")).await;
    let quarantined = s.store.quarantined(10).expect("list");
    assert_eq!(quarantined.len(), 1);
    assert_eq!((quarantined[0].key.as_str(), quarantined[0].raw.as_slice()), ("shop/web/c1", &[0xee, 0x00, 0x01][..]));
    assert!(s.metric("botc_sessions_quarantined_total 1").await);
    assert_eq!(botc_serve::ports::TimerStore::pending(&*s.store).await.expect("timers"), 1, "c2 reached its wait");
    // `botc quarantine` reads a data directory no botc is writing, and says so otherwise.
    let busy = Embedded::quarantined_in(dir.path(), 10).expect_err("the directory is in use");
    assert!(busy.0.contains("stop botc serve and try again"), "{busy}");
    s.shut_down().await;
    assert_eq!(Embedded::quarantined_in(dir.path(), 10).expect("read after the stop"), quarantined);
}

#[test]
fn the_flow_sees_the_language_the_channel_reported() {
    let flow = "flow: hello\nstart: hi\nnodes:\n  hi:\n    say: \"lang={{ user.language }}\"\n    next: done\n  done:\n    end:\n";
    let core = Core {
        bots: Arc::new(Bots::new(vec![Bot::web("shop", "Shop", Arc::new(load(flow)))])),
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(ManualClock::at(0)),
    };
    let deliveries = vec![Delivery { offset: 0, event: event("e1", "c1", Input::Text("hi".into()), 1_000) }];
    let batch = core.process(partition0(), 1, deliveries, HashMap::new());
    assert!(batch.messages.iter().any(|m| m.entry.text == "lang=pt-BR"), "{:#?}", batch.messages);
}

#[test]
fn a_position_on_another_partition_skips_nothing_after_a_repartition() {
    let core = core();
    let first = core.process(
        partition0(),
        1,
        vec![Delivery { offset: 0, event: event("e1", "c1", Input::Text("hi".into()), 1_000) }],
        HashMap::new(),
    );
    let mut stored = first.sessions[0].stored.clone();
    // The bus was repartitioned: c1's events used to be on partition 3, far ahead.
    (stored.partition, stored.applied) = (3, 500);
    let found = HashMap::from([("shop/web/c1".to_string(), Found::Stored(stored.clone()))]);
    let answer = vec![Delivery { offset: 7, event: event("e2", "c1", Input::Button("large".into()), 1_010) }];
    let batch = core.process(partition0(), 8, answer.clone(), found);
    assert_eq!(batch.sessions.len(), 1, "the answer was applied, not skipped as already seen");
    assert_eq!((batch.sessions[0].stored.partition, batch.sessions[0].stored.applied), (0, 8));
    // On its own partition the same position does skip it.
    stored.partition = 0;
    let found = HashMap::from([("shop/web/c1".to_string(), Found::Stored(stored))]);
    assert!(core.process(partition0(), 8, answer, found).sessions.is_empty(), "an event already applied ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_partition_was_taken_over_stops_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(Embedded::open(dir.path(), 1, 100).expect("store"));
    let worker = Arc::new(Worker {
        core: core(),
        bus: store.clone(),
        sessions: store.clone(),
        committer: store.clone(),
        flows: registry(dir.path()).await,
        environment: None,
    });
    let lease = harness::lease(&store, Work::Partition(0)).await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(lease, stopped));
    // Another process takes the partition (the test's lease lasts an hour from 0).
    let newer = store.acquire(Work::Partition(0), "another", 3_600_001, Duration::from_secs(10)).await;
    let newer = newer.expect("acquire").expect("the expired lease is free");
    store.publish(vec![event("e1", "c1", Input::Text("hi".into()), 1_000)]).await.expect("published");
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the fenced worker stopped").expect("no panic");
    assert_eq!(store.committed(&newer).await.expect("position"), 0, "the fenced worker moved the position");
    assert!(store.load(&["shop/web/c1".to_string()]).await.expect("load").is_empty(), "the fenced worker wrote");
}

/// Which partitions each of two processes holds, as their hold loops see it.
#[derive(Default)]
struct Holds(std::sync::Mutex<HashMap<usize, &'static str>>);

impl Holds {
    fn of(&self, who: &str) -> usize {
        self.0.lock().expect("holds").values().filter(|w| **w == who).count()
    }
}

/// Starts a process's worth of hold loops on `total` partitions, sharing them fairly.
fn start_holding(
    store: &Arc<Embedded>,
    clock: &Arc<ManualClock>,
    who: &'static str,
    total: usize,
    holds: &Arc<Holds>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (Arc<botc_serve::supervise::Share>, Vec<tokio::task::JoinHandle<()>>) {
    use botc_serve::supervise::{Holding, Share};
    let mut tasks = Vec::new();
    let holding = Holding {
        leases: store.clone(),
        holder: who.into(),
        clock: clock.clone(),
        ttl: botc_serve::supervise::LEASE_TTL,
    };
    let share = Share::new("workers", total);
    tasks.push(tokio::spawn({
        let (h, share, stop) = (holding.clone(), share.clone(), stop.clone());
        async move { h.count_in(share, stop).await }
    }));
    for p in 0..total {
        let (h, share, stop, holds) = (holding.clone(), share.clone(), stop.clone(), holds.clone());
        tasks.push(tokio::spawn(async move {
            h.hold(Work::Partition(p), Some(&share), stop, |_lease| {
                let holds = holds.clone();
                async move {
                    // Holds the partition until dropped (handed over) or the test ends.
                    struct Mark(Arc<Holds>, usize);
                    impl Drop for Mark {
                        fn drop(&mut self) {
                            self.0.0.lock().expect("holds").remove(&self.1);
                        }
                    }
                    holds.0.lock().expect("holds").insert(p, who);
                    let _mark = Mark(holds.clone(), p);
                    std::future::pending::<()>().await
                }
            })
            .await
        }));
    }
    (share, tasks)
}

/// Waits (yielding to the tasks, on no clock) until `done`, or fails after many rounds.
async fn settle(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never settled: {what}");
}

/// A worker process started next to one holding every partition takes half of them over
/// within seconds (instead of waiting as a standby), and gets them all when the first goes
/// quiet.
#[tokio::test]
async fn worker_processes_share_the_partitions_fairly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Embedded::open(dir.path(), 4, 100).expect("store"));
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let holds = Arc::new(Holds::default());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let (_, a) = start_holding(&store, &clock, "a", 4, &holds, &stopped);
    settle("a takes all four", || holds.of("a") == 4).await;

    let (b, _) = start_holding(&store, &clock, "b", 4, &holds, &stopped);
    settle("b counts two processes", || b.limit() == 2).await;
    for _ in 0..8 {
        clock.advance(Duration::from_millis(3_400));
        settle("the loops run", || true).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        if holds.of("b") == 2 {
            break;
        }
    }
    assert_eq!((holds.of("a"), holds.of("b")), (2, 2), "the four partitions shared two and two");

    // a dies without a word (its leases are neither renewed nor released); after they
    // expire, b takes everything.
    for t in a {
        t.abort();
    }
    for _ in 0..12 {
        clock.advance(Duration::from_millis(3_400));
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        if holds.of("b") == 4 {
            break;
        }
    }
    assert_eq!(holds.of("b"), 4, "b took over a's partitions once a went quiet");
}

/// `bot`'s first deploy to production, to version `to`.
fn first_deploy(bot: &str, to: u64) -> botc_serve::ports::Deploy {
    botc_serve::ports::Deploy {
        seq: 0,
        bot: bot.into(),
        environment: "production".into(),
        from: None,
        to,
        action: "deploy".into(),
        by: "test".into(),
        plan: String::new(),
        at: 3,
    }
}

/// A process that meets a conversation pinned to a flow version it has not loaded reads it
/// from the registry (following the environment first, which may have moved to it) and
/// never guesses: a version the registry does not hold stays unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_a_session_is_pinned_to_is_loaded_from_the_registry_never_guessed() {
    use botc_serve::ports::{FlowRegistry, Source};
    let dir = tempfile::tempdir().expect("dir");
    let registry = registry(dir.path()).await;
    let v1 = Arc::new(load(FLOW));
    let v2 = load(&FLOW.replace("Which size?", "Which size, please?"));
    let (h1, h2) = (v1.program().hash, v2.program().hash);
    for (n, p) in [(1u64, v1.program()), (2, v2.program())] {
        let v = registry.register("shop".into(), p.hash, p.encode(), Source::default(), n).await.expect("register");
        assert_eq!(v.number, n);
    }
    registry.point(first_deploy("shop", 2)).await.expect("deploy");

    // Following `production`: the environment moved to the session's version, so that is
    // now the version served (the session is stepped on it, not migrated back).
    let bots = Bots::new(vec![Bot::web("shop", "Shop", v1.clone())]);
    assert!(!bots.snapshot().knows("shop", &h2));
    bots.learn(&*registry, Some("production"), "shop", h2).await.expect("learns");
    let now = bots.snapshot();
    assert_eq!(now.get("shop").expect("shop").program.program().hash, h2, "serves the environment's version");
    assert_eq!(now.number("shop"), Some(2));
    assert!(now.knows("shop", &h1), "the version it served before is kept, to move its conversations");

    // Serving files (no environment): the version is loaded as an earlier one, to migrate from.
    let bots = Bots::new(vec![Bot::web("shop", "Shop", v1.clone())]);
    bots.learn(&*registry, None, "shop", h2).await.expect("learns");
    assert_eq!(bots.snapshot().get("shop").expect("shop").program.program().hash, h1, "still serves its own");
    assert!(bots.snapshot().previous("shop", &h2).is_some());

    // A version nobody registered stays unknown: the conversation will start over.
    bots.learn(&*registry, None, "shop", [7; 32]).await.expect("asks");
    assert!(!bots.snapshot().knows("shop", &[7; 32]));
}

/// A deployed version this process cannot verify (say a newer release's bytecode during an
/// upgrade) holds back only its own bot: the others follow their environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_version_that_does_not_verify_holds_back_only_its_bot() {
    use botc_serve::ports::{FlowRegistry, Source};
    let dir = tempfile::tempdir().expect("dir");
    let registry = registry(dir.path()).await;
    let v1 = Arc::new(load(FLOW));
    let v2 = load(&FLOW.replace("Which size?", "Which size, please?"));
    let p = v2.program();
    registry.register("shop".into(), p.hash, p.encode(), Source::default(), 1).await.expect("register");
    registry.point(first_deploy("shop", 1)).await.expect("deploy");
    registry.register("other".into(), [5; 32], b"not bytecode".to_vec(), Source::default(), 1).await.expect("register");
    registry.point(first_deploy("other", 1)).await.expect("deploy");
    let bots = Bots::new(vec![Bot::web("shop", "Shop", v1.clone()), Bot::web("other", "Other", v1.clone())]);
    assert_eq!(bots.follow(&*registry, "production").await.expect("follows"), 1, "one bot moved");
    let now = bots.snapshot();
    assert_eq!(now.get("shop").expect("shop").program.program().hash, p.hash);
    assert_eq!(now.get("other").expect("other").program.program().hash, v1.program().hash, "kept");
}
