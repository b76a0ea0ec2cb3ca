//! The port contract: what every store behind `botc serve`'s ports must do, as checks that
//! run against a real store. The embedded store passes them in this crate's tests; a Redis,
//! Kafka or Postgres adapter passes the same checks with [`contract_suite!`] before a role
//! may use it.
//!
//! Each check takes a fresh, empty store with [`PARTITIONS`] bus partitions and panics with
//! what went wrong. Time is passed in (the ports never read it), so the checks run on no
//! clock at all.
//!
//! ```text
//! botc_serve::contract_suite!(my_store_fresh(botc_serve::contract::PARTITIONS));
//! ```

use super::Event;
use super::ports::*;
use super::transcript::{Entry, From};
use botc_runtime::vm::Input;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Bus partitions of the store each check is given.
pub const PARTITIONS: usize = 2;

/// Everything the roles use of a store, in one bound.
pub trait Store:
    Leases + Bus + SessionStore + Committer + TimerStore + Transcript + Outbox + ReplyQueue + HistoryQueue
{
}

impl<T> Store for T where
    T: Leases + Bus + SessionStore + Committer + TimerStore + Transcript + Outbox + ReplyQueue + HistoryQueue
{
}

/// A fresh, empty store for one check, and whatever must live as long as it (its data
/// directory, the server it talks to).
pub struct Fresh<S> {
    pub store: S,
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Runs every check of the contract, one test each, against stores `$fresh` makes (an
/// expression that evaluates to a future of a [`Fresh`] store with [`PARTITIONS`]
/// partitions).
#[macro_export]
macro_rules! contract_suite {
    ($fresh:expr) => {
        $crate::contract_suite!(@tests $fresh;
            leases_are_exclusive_until_they_expire,
            members_are_counted_until_they_expire,
            a_lease_is_fenced_by_the_next_one,
            published_events_come_back_in_order,
            depth_counts_what_is_not_yet_committed,
            duplicate_deliveries_are_published_once,
            replaying_any_suffix_of_batches_changes_nothing,
            conflicts_are_reported_per_key_and_hold_the_position,
            effects_committed_again_are_kept_once,
            timers_fire_once_when_due_and_can_be_cancelled,
            outbox_items_complete_once,
            replies_wait_in_order_until_delivered,
            history_waits_in_order_until_shipped,
        );
    };
    (@tests $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let fresh = $fresh.await;
                $crate::contract::$check(&fresh.store).await;
            }
        )*
    };
}

const BOT: &str = "contract";
const TTL: Duration = Duration::from_secs(10);
/// Unix milliseconds the checks start at.
const T0: u64 = 1_700_000_000_000;

fn event(id: &str, conversation: &str, kind: Input) -> Event {
    Event {
        id: id.into(),
        platform: "web".into(),
        bot: BOT.into(),
        conversation: conversation.into(),
        user_id: format!("web:{conversation}"),
        user_name: "Ada".into(),
        user_language: String::new(),
        kind,
        received_at: T0 / 1000,
        reply_to: String::new(),
    }
}

fn text(id: &str, conversation: &str) -> Event {
    event(id, conversation, Input::Text(format!("said in {id}")))
}

/// `n` conversations whose events all go to partition `p`.
fn conversations_on(s: &impl Store, p: usize, n: usize) -> Vec<String> {
    (0..).map(|i| format!("c{i}")).filter(|c| s.partition_of(&text("x", c).key()) == p).take(n).collect()
}

async fn take(s: &impl Store, work: Work, holder: &str, now_ms: u64) -> Lease {
    match s.acquire(work.clone(), holder, now_ms, TTL).await {
        Ok(Some(lease)) => lease,
        other => panic!("{holder} could not take {work}: {other:?}"),
    }
}

fn session(key: &str, expected: Expected, version: u64, applied: u64, partition: usize) -> SessionWrite {
    SessionWrite {
        key: key.into(),
        expected,
        stored: Stored {
            session: format!("session of {key} at version {version}").into_bytes(),
            version,
            applied,
            partition: partition as u32,
            name: "Ada".into(),
            touched_at: T0 / 1000,
        },
    }
}

fn message(key: &str, id: &str) -> Message {
    Message {
        key: key.into(),
        entry: Entry { seq: 0, id: id.into(), from: From::Bot, text: id.into(), buttons: vec![], at: 0 },
    }
}

fn reply(key: &str, id: &str) -> QueuedReply {
    QueuedReply {
        id: id.into(),
        bot: BOT.into(),
        key: key.into(),
        reply: botc_runtime::platforms::Reply {
            reply_to: "chat".into(),
            text: id.into(),
            buttons: vec![],
            first: true,
        },
    }
}

fn timer(conversation: &str, number: u32, at: u64) -> TimerChange {
    let e = event(&format!("timer:{conversation}:{number}"), conversation, Input::Timer { timer: number });
    TimerChange::Start { at, event: Box::new(e) }
}

fn outbox(conversation: &str, id: &str) -> OutboxItem {
    OutboxItem {
        id: id.into(),
        request: HttpRequest { method: "GET".into(), url: "http://127.0.0.1:9/".into(), headers: vec![], body: None },
        result: event(&format!("{id}:http"), conversation, Input::HandBack),
    }
}

fn history(conversation: &str, id: &str) -> HistoryRecord {
    HistoryRecord {
        id: id.into(),
        bot: BOT.into(),
        conversation: conversation.into(),
        user_id: format!("web:{conversation}"),
        platform: "web".into(),
        direction: Direction::Out,
        kind: "message".into(),
        text: id.into(),
        buttons: vec![],
        at: T0 / 1000,
    }
}

/// All a store shows through its ports about `keys` and the bot's queues.
#[derive(Debug, PartialEq)]
struct Seen {
    committed: Vec<u64>,
    sessions: Vec<(String, Option<Found>)>,
    transcripts: Vec<Vec<Entry>>,
    replies: Vec<QueuedReply>,
    timers: u64,
    next_due: Option<u64>,
    outbox: Vec<OutboxItem>,
    history: Vec<HistoryRecord>,
}

async fn look(s: &impl Store, keys: &[String], leases: &[Lease], replies: &Lease, outbox_lease: &Lease) -> Seen {
    let mut committed = Vec::new();
    for l in leases {
        committed.push(s.committed(l).await.expect("committed"));
    }
    let mut found = s.load(keys).await.expect("load");
    let sessions = keys.iter().map(|k| (k.clone(), found.remove(k))).collect();
    let mut transcripts = Vec::new();
    for k in keys {
        transcripts.push(s.after(k, 0).await.expect("transcript"));
    }
    Seen {
        committed,
        sessions,
        transcripts,
        replies: s.waiting(replies, 1000).await.expect("replies").into_iter().map(|(_, r)| r).collect(),
        timers: TimerStore::pending(s).await.expect("timers"),
        next_due: s.next_due().await.expect("next due"),
        outbox: Outbox::pending(s, outbox_lease, 1000).await.expect("outbox"),
        history: s.unshipped(1000).await.expect("history").into_iter().map(|(_, r)| r).collect(),
    }
}

/// One holder at a time: a second is refused until the first's lease expires or is given
/// up, and exactly one of many simultaneous callers gets a free lease.
pub async fn leases_are_exclusive_until_they_expire(s: &impl Store) {
    let a = take(s, Work::Timers, "a", T0).await;
    let refused = s.acquire(Work::Timers, "b", T0 + 1_000, TTL).await.expect("acquire");
    assert_eq!(refused, None, "b took the timers while a's lease ran");
    s.renew(&a, T0 + 9_000, TTL).await.expect("a renews its own lease");
    let refused = s.acquire(Work::Timers, "b", T0 + 15_000, TTL).await.expect("acquire");
    assert_eq!(refused, None, "a renewed at +9 s for 10 s: still a's at +15 s");
    let b = take(s, Work::Timers, "b", T0 + 19_001).await;
    assert!(b.epoch > a.epoch, "a later lease has a higher epoch: {a:?} then {b:?}");
    s.release(&b).await.expect("release");
    let c = take(s, Work::Timers, "c", T0 + 19_002).await;
    assert!(c.epoch > b.epoch);
    // Other work is not affected.
    take(s, Work::Outbox, "a", T0).await;
    take(s, Work::Replies(BOT.into()), "b", T0).await;
    take(s, Work::Partition(1), "c", T0).await;
    // Many callers at once, one winner.
    let tries = (0..16).map(|i| {
        let holder = format!("h{i}");
        async move { s.acquire(Work::Partition(0), &holder, T0, TTL).await.expect("acquire") }
    });
    let won = futures_util::future::join_all(tries).await.into_iter().flatten().count();
    assert_eq!(won, 1, "exactly one of 16 simultaneous callers holds partition 0");
}

/// The processes doing a kind of work are counted while they say they are alive, per group.
pub async fn members_are_counted_until_they_expire(s: &impl Store) {
    let count =
        |holder: &'static str, at: u64| async move { s.members("workers", holder, at, TTL).await.expect("members") };
    assert_eq!(count("a", T0).await, 1);
    assert_eq!(count("b", T0 + 1_000).await, 2);
    assert_eq!(count("a", T0 + 9_000).await, 2, "a said it was alive again");
    // b said last at +1 s, for 10 s: gone at +12 s; a (at +9 s) is not.
    assert_eq!(count("c", T0 + 12_000).await, 2, "b went quiet; a and c remain");
    assert_eq!(s.members("dispatchers", "a", T0, TTL).await.expect("members"), 1, "another group counts its own");
}

fn fenced<T>(r: Result<T, StoreError>, what: &str, work: Work) {
    match r {
        Err(StoreError::Fenced(w)) => assert_eq!(w, work, "{what}"),
        Ok(_) => panic!("{what} under a fenced lease was allowed"),
        Err(e) => panic!("{what} under a fenced lease: {e:?}, not Fenced"),
    }
}

/// A lease taken over (by another holder after expiry, or by the same holder again) fences
/// the old one: everything done under it is refused and writes nothing.
pub async fn a_lease_is_fenced_by_the_next_one(s: &impl Store) {
    let conv = &conversations_on(s, 0, 1)[0];
    let key = text("x", conv).key();
    s.publish(vec![text("e1", conv)]).await.expect("publish");
    let old = take(s, Work::Partition(0), "a", T0).await;
    let new = take(s, Work::Partition(0), "b", T0 + 60_000).await;
    let p0 = Work::Partition(0);
    fenced(s.committed(&old).await, "reading the position", p0.clone());
    fenced(s.fetch(&old, 0, 10).await, "fetching", p0.clone());
    let mut batch = Batch::new(old.clone(), 1);
    batch.sessions.push(session(&key, Expected::Absent, 1, 1, 0));
    batch.messages.push(message(&key, "e1:0"));
    fenced(s.commit(Arc::new(batch)).await, "committing", p0.clone());
    fenced(s.renew(&old, T0 + 61_000, TTL).await, "renewing", p0.clone());
    assert_eq!(s.committed(&new).await.expect("committed"), 0, "the fenced commit moved the position");
    assert!(s.load(std::slice::from_ref(&key)).await.expect("load").is_empty(), "the fenced commit wrote a session");
    assert!(s.after(&key, 0).await.expect("transcript").is_empty(), "the fenced commit wrote a message");
    assert_eq!(s.fetch(&new, 0, 10).await.expect("fetch").len(), 1, "the new holder reads the partition");
    // The same holder asking again (a role restarted in its process) fences itself.
    let again = take(s, Work::Partition(0), "b", T0 + 60_001).await;
    fenced(s.committed(&new).await, "reading the position", p0);
    s.committed(&again).await.expect("the newest lease works");

    for work in [Work::Timers, Work::Outbox, Work::Replies(BOT.into())] {
        let old = take(s, work.clone(), "a", T0).await;
        take(s, work.clone(), "b", T0 + 60_000).await;
        match &work {
            Work::Timers => fenced(s.fire_due(&old, T0 / 1000).await, "firing timers", work.clone()),
            Work::Outbox => {
                fenced(Outbox::pending(s, &old, 10).await, "reading the outbox", work.clone());
                let done = s.complete(&old, "x".into(), text("r", conv)).await;
                fenced(done, "completing an outbox item", work.clone());
            }
            _ => {
                fenced(s.waiting(&old, 10).await, "reading replies", work.clone());
                fenced(s.delivered(&old, 1).await, "marking a reply delivered", work.clone());
            }
        }
    }
}

/// Published events are durable and come back per partition in order, with increasing
/// offsets from where the partition's position is.
pub async fn published_events_come_back_in_order(s: &impl Store) {
    let convs = conversations_on(s, 1, 2);
    let events: Vec<Event> = (0..5).map(|i| text(&format!("e{i}"), &convs[i % 2])).collect();
    s.publish(events.clone()).await.expect("publish");
    let lease = take(s, Work::Partition(1), "w", T0).await;
    let from = s.committed(&lease).await.expect("committed");
    assert_eq!(from, 0);
    let mut got = Vec::new();
    while got.len() < events.len() {
        let next = got.last().map_or(from, |d: &Delivery| d.offset + 1);
        got.extend(s.fetch(&lease, next, 2).await.expect("fetch"));
    }
    let ids: Vec<&str> = got.iter().map(|d| d.event.id.as_str()).collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset), "offsets grow: {got:?}");
    assert_eq!(got[0].event, events[0], "an event comes back as it was published");
    let other = take(s, Work::Partition(0), "w", T0).await;
    let none = tokio::time::timeout(Duration::from_millis(50), s.fetch(&other, 0, 10)).await;
    assert!(none.is_err(), "partition 0 has no events, so a fetch waits: {none:?}");
}

/// The bus's depth counts the events published and not yet committed, over all partitions.
pub async fn depth_counts_what_is_not_yet_committed(s: &impl Store) {
    let convs = conversations_on(s, 1, 2);
    let events: Vec<Event> = (0..5).map(|i| text(&format!("e{i}"), &convs[i % 2])).collect();
    s.publish(events).await.expect("publish");
    s.publish(vec![text("e5", &conversations_on(s, 0, 1)[0])]).await.expect("publish");
    assert_eq!(Bus::depth(s).await.expect("depth"), 6);
    let lease = take(s, Work::Partition(1), "w", T0).await;
    s.commit(Arc::new(Batch::new(lease, 3))).await.expect("commit");
    assert_eq!(Bus::depth(s).await.expect("depth"), 3, "three of partition 1's events are committed");
}

/// A platform's redelivery of an event (same id) within the window is taken once.
pub async fn duplicate_deliveries_are_published_once(s: &impl Store) {
    let e = text("platform-update-1", "c1");
    let window = Duration::from_secs(600);
    assert!(s.publish_once(e.clone(), window).await.expect("first"), "the first delivery is published");
    assert!(!s.publish_once(e.clone(), window).await.expect("second"), "the redelivery is dropped");
    let p = s.partition_of(&e.key());
    let lease = take(s, Work::Partition(p), "w", T0).await;
    let got = s.fetch(&lease, 0, 10).await.expect("fetch");
    assert_eq!(got.len(), 1, "{got:?}");
    // After the window the same id is news again.
    let later = Event { received_at: e.received_at + 601, ..e };
    assert!(s.publish_once(later, window).await.expect("later"), "a delivery after the window is published");
}

/// Three batches, then every suffix of them committed again, as a worker that crashed
/// before its position was stored would: nothing anyone can see changes.
pub async fn replaying_any_suffix_of_batches_changes_nothing(s: &impl Store) {
    let convs = conversations_on(s, 0, 2);
    let (a, b) = (text("x", &convs[0]).key(), text("x", &convs[1]).key());
    s.publish(vec![text("e1", &convs[0]), text("e2", &convs[1]), text("e3", &convs[0])]).await.expect("publish");
    let lease = take(s, Work::Partition(0), "w", T0).await;
    let mut b1 = Batch::new(lease.clone(), 1);
    b1.sessions.push(session(&a, Expected::Absent, 1, 1, 0));
    b1.messages.extend([message(&a, "e1:user"), message(&a, "e1:0")]);
    b1.replies.push(reply(&a, "e1:0"));
    b1.timers.push(timer(&convs[0], 1, T0 / 1000 + 60));
    b1.outbox.push(outbox(&convs[0], "e1:1"));
    b1.history.push(history(&convs[0], "e1:0"));
    let mut b2 = Batch::new(lease.clone(), 2);
    b2.sessions.push(session(&b, Expected::Absent, 1, 2, 0));
    b2.messages.push(message(&b, "e2:0"));
    b2.history.push(history(&convs[1], "e2:0"));
    let mut b3 = Batch::new(lease.clone(), 3);
    b3.sessions.push(session(&a, Expected::Version(1), 2, 3, 0));
    b3.messages.push(message(&a, "e3:0"));
    b3.replies.push(reply(&a, "e3:0"));
    b3.timers.push(TimerChange::Cancel { key: a.clone(), timer: 1 });
    b3.history.push(history(&convs[0], "e3:0"));
    let batches = [Arc::new(b1), Arc::new(b2), Arc::new(b3)];
    for batch in &batches {
        s.commit(batch.clone()).await.expect("commit");
    }
    let replies = take(s, Work::Replies(BOT.into()), "d", T0).await;
    let out = take(s, Work::Outbox, "o", T0).await;
    let keys = [a.clone(), b.clone()];
    let before = look(s, &keys, std::slice::from_ref(&lease), &replies, &out).await;
    assert_eq!(before.committed, [3]);
    assert_eq!(before.transcripts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    assert_eq!((before.replies.len(), before.timers, before.outbox.len(), before.history.len()), (2, 0, 1, 3));
    for from in 0..batches.len() {
        for batch in &batches[from..] {
            match s.commit(batch.clone()).await {
                Err(StoreError::Conflict(_)) | Ok(()) => {}
                Err(e) => panic!("committing batch {} again: {e:?}", batch.next_offset),
            }
        }
        let after = look(s, &keys, std::slice::from_ref(&lease), &replies, &out).await;
        assert_eq!(after, before, "committing batches {}.. again changed what the store shows", from + 1);
    }
}

/// A batch whose sessions changed under it names every such session, and the partition's
/// position stays where it was, so the batch is done again.
pub async fn conflicts_are_reported_per_key_and_hold_the_position(s: &impl Store) {
    let convs = conversations_on(s, 1, 3);
    let keys: Vec<String> = convs.iter().map(|c| text("x", c).key()).collect();
    let lease = take(s, Work::Partition(1), "w", T0).await;
    let mut first = Batch::new(lease.clone(), 1);
    first.sessions.push(session(&keys[1], Expected::Absent, 1, 1, 1));
    first.sessions.push(session(&keys[2], Expected::Absent, 1, 1, 1));
    s.commit(Arc::new(first)).await.expect("first commit");
    let mut stale = Batch::new(lease.clone(), 2);
    stale.sessions.push(session(&keys[0], Expected::Absent, 1, 2, 1));
    stale.sessions.push(session(&keys[1], Expected::Absent, 1, 2, 1));
    stale.sessions.push(session(&keys[2], Expected::Version(7), 8, 2, 1));
    match s.commit(Arc::new(stale)).await {
        Err(StoreError::Conflict(mut named)) => {
            named.sort();
            assert_eq!(named, keys[1..], "every conflicting session, and only those");
        }
        other => panic!("a stale batch was not refused: {other:?}"),
    }
    assert_eq!(s.committed(&lease).await.expect("committed"), 1, "a batch with conflicts moved the position");
    let found = s.load(&keys[1..]).await.expect("load");
    for k in &keys[1..] {
        match &found[k] {
            Found::Stored(st) => assert_eq!(st.version, 1, "{k} was overwritten despite the conflict"),
            other => panic!("{k}: {other:?}"),
        }
    }
    let mut redo = Batch::new(lease.clone(), 2);
    redo.sessions.push(session(&keys[0], Expected::Absent, 1, 2, 1));
    redo.sessions.push(session(&keys[1], Expected::Version(1), 2, 2, 1));
    s.commit(Arc::new(redo)).await.expect("the batch done again with fresh sessions");
    assert_eq!(s.committed(&lease).await.expect("committed"), 2);
    // The position never moves back.
    s.commit(Arc::new(Batch::new(lease.clone(), 1))).await.expect("an empty old batch");
    assert_eq!(s.committed(&lease).await.expect("committed"), 2, "the position moved back");
}

/// Effects carry ids derived from their event; a second copy of one (a batch done again
/// after a crash between its effects and its sessions) is kept once.
pub async fn effects_committed_again_are_kept_once(s: &impl Store) {
    let conv = &conversations_on(s, 0, 1)[0];
    let key = text("x", conv).key();
    let lease = take(s, Work::Partition(0), "w", T0).await;
    let effects = |batch: &mut Batch| {
        batch.messages.push(message(&key, "e1:0"));
        batch.replies.push(reply(&key, "e1:0"));
        batch.timers.push(timer(conv, 1, T0 / 1000 + 60));
        batch.outbox.push(outbox(conv, "e1:1"));
    };
    let mut first = Batch::new(lease.clone(), 1);
    first.sessions.push(session(&key, Expected::Absent, 1, 1, 0));
    effects(&mut first);
    s.commit(Arc::new(first)).await.expect("commit");
    let mut again = Batch::new(lease.clone(), 2);
    again.sessions.push(session(&key, Expected::Version(1), 2, 2, 0));
    effects(&mut again);
    again.messages.push(message(&key, "e2:0"));
    s.commit(Arc::new(again)).await.expect("commit");
    let ids: Vec<String> = s.after(&key, 0).await.expect("transcript").into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["e1:0", "e2:0"]);
    let replies = take(s, Work::Replies(BOT.into()), "d", T0).await;
    assert_eq!(s.waiting(&replies, 10).await.expect("replies").len(), 1, "the reply twice");
    assert_eq!(TimerStore::pending(s).await.expect("timers"), 1, "the timer twice");
    let out = take(s, Work::Outbox, "o", T0).await;
    assert_eq!(Outbox::pending(s, &out, 1000).await.expect("outbox").len(), 1, "the outbox item twice");
}

/// A timer fires once, at its second, onto the bus; a cancelled one never does.
pub async fn timers_fire_once_when_due_and_can_be_cancelled(s: &impl Store) {
    let convs = conversations_on(s, 0, 2);
    let (due, cancelled) = (&convs[0], &convs[1]);
    let at = T0 / 1000 + 60;
    let lease = take(s, Work::Partition(0), "w", T0).await;
    let mut batch = Batch::new(lease.clone(), 0);
    batch.timers.extend([timer(due, 1, at), timer(cancelled, 1, at)]);
    s.commit(Arc::new(batch)).await.expect("commit");
    let mut cancel = Batch::new(lease.clone(), 0);
    cancel.timers.push(TimerChange::Cancel { key: text("x", cancelled).key(), timer: 1 });
    s.commit(Arc::new(cancel)).await.expect("commit");
    assert_eq!(s.next_due().await.expect("next due"), Some(at));
    let timers = take(s, Work::Timers, "t", T0).await;
    assert_eq!(s.fire_due(&timers, at - 1).await.expect("fire"), 0, "fired early");
    assert_eq!(s.fire_due(&timers, at).await.expect("fire"), 1);
    assert_eq!(s.fire_due(&timers, at + 10).await.expect("fire"), 0, "fired twice");
    assert_eq!((TimerStore::pending(s).await.expect("pending"), s.next_due().await.expect("due")), (0, None));
    let fired = s.fetch(&lease, 0, 10).await.expect("fetch");
    let kinds: Vec<(&str, &Input)> = fired.iter().map(|d| (d.event.conversation.as_str(), &d.event.kind)).collect();
    assert_eq!(kinds, [(due.as_str(), &Input::Timer { timer: 1 })]);
}

/// Completing an outbox item publishes its result and forgets it; completing it again
/// publishes nothing.
pub async fn outbox_items_complete_once(s: &impl Store) {
    let conv = &conversations_on(s, 1, 1)[0];
    let lease = take(s, Work::Partition(1), "w", T0).await;
    let mut batch = Batch::new(lease.clone(), 0);
    batch.outbox.extend([outbox(conv, "e1:1"), outbox(conv, "e2:1")]);
    s.commit(Arc::new(batch)).await.expect("commit");
    let out = take(s, Work::Outbox, "o", T0).await;
    let items = Outbox::pending(s, &out, 1000).await.expect("outbox");
    assert_eq!(items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["e1:1", "e2:1"]);
    let result =
        Event { kind: Input::Http { status: 200, body: serde_json::json!({"ok": true}) }, ..items[0].result.clone() };
    s.complete(&out, "e1:1".into(), result.clone()).await.expect("complete");
    s.complete(&out, "e1:1".into(), result.clone()).await.expect("complete again");
    let left: Vec<String> = Outbox::pending(s, &out, 1000).await.expect("outbox").into_iter().map(|i| i.id).collect();
    assert_eq!(left, ["e2:1"]);
    let published = s.fetch(&lease, 0, 10).await.expect("fetch");
    assert_eq!(published.iter().map(|d| &d.event).collect::<Vec<_>>(), [&result], "published once, as given");
}

/// A bot's replies wait in the order they were committed until marked delivered.
pub async fn replies_wait_in_order_until_delivered(s: &impl Store) {
    let convs = conversations_on(s, 0, 2);
    let keys: Vec<String> = convs.iter().map(|c| text("x", c).key()).collect();
    let lease = take(s, Work::Partition(0), "w", T0).await;
    let mut batch = Batch::new(lease.clone(), 0);
    batch.replies.extend([reply(&keys[0], "e1:0"), reply(&keys[1], "e2:0"), reply(&keys[0], "e3:0")]);
    s.commit(Arc::new(batch)).await.expect("commit");
    let mut other = reply(&keys[0], "o1:0");
    other.bot = "another".into();
    let mut batch = Batch::new(lease.clone(), 0);
    batch.replies.push(other);
    s.commit(Arc::new(batch)).await.expect("commit");
    let d = take(s, Work::Replies(BOT.into()), "d", T0).await;
    let waiting = s.waiting(&d, 10).await.expect("waiting");
    let ids: Vec<&str> = waiting.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(ids, ["e1:0", "e2:0", "e3:0"], "this bot's, in order");
    assert!(waiting.windows(2).all(|w| w[0].0 < w[1].0), "positions grow: {waiting:?}");
    assert_eq!(waiting[0].1, reply(&keys[0], "e1:0"), "a reply comes back as it was committed");
    s.delivered(&d, waiting[1].0).await.expect("delivered");
    let ids: Vec<String> = s.waiting(&d, 10).await.expect("waiting").into_iter().map(|(_, r)| r.id).collect();
    assert_eq!(ids, ["e1:0", "e3:0"]);
    assert_eq!(ReplyQueue::depth(s).await.expect("depth"), 3, "the other bot's reply still waits");
    let mut found: HashMap<u64, QueuedReply> = s.waiting(&d, 10).await.expect("waiting").into_iter().collect();
    assert!(found.remove(&waiting[1].0).is_none(), "the delivered reply is gone");
}

/// History records wait in commit order, each once, until shipped up to a position.
pub async fn history_waits_in_order_until_shipped(s: &impl Store) {
    let conv = &conversations_on(s, 0, 1)[0];
    let key = text("x", conv).key();
    let lease = take(s, Work::Partition(0), "w", T0).await;
    for (n, ids) in [(1, ["e1:user", "e1:0"]), (2, ["e2:user", "e2:0"]), (3, ["e3:user", "e3:0"])] {
        let mut b = Batch::new(lease.clone(), n);
        let expected = if n == 1 { Expected::Absent } else { Expected::Version(n - 1) };
        b.sessions.push(session(&key, expected, n, n, 0));
        b.history.extend(ids.iter().map(|id| history(conv, id)));
        s.commit(Arc::new(b)).await.expect("commit");
    }
    let waiting = s.unshipped(1000).await.expect("unshipped");
    let ids: Vec<&str> = waiting.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(ids, ["e1:user", "e1:0", "e2:user", "e2:0", "e3:user", "e3:0"]);
    assert!(waiting.windows(2).all(|w| w[0].0 < w[1].0), "positions grow: {waiting:?}");
    let first_two = s.unshipped(2).await.expect("unshipped");
    assert_eq!(first_two.len(), 2, "at most as many as asked for");
    // The sink has the first four: they go, the rest stay, in order.
    s.shipped(waiting[3].0).await.expect("shipped");
    let left: Vec<String> = s.unshipped(1000).await.expect("unshipped").into_iter().map(|(_, r)| r.id).collect();
    assert_eq!(left, ["e3:user", "e3:0"]);
    s.shipped(waiting[5].0).await.expect("shipped");
    assert!(s.unshipped(1000).await.expect("unshipped").is_empty());
}

/// Two handles on one fresh flow registry (as two processes would have), and whatever must
/// live as long as they do.
pub struct FreshRegistry<R> {
    pub first: R,
    pub second: R,
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Runs every check of the flow registry's contract, one test each, against registries
/// `$fresh` makes (a future of a [`FreshRegistry`]).
#[macro_export]
macro_rules! registry_suite {
    ($fresh:expr) => {
        $crate::registry_suite!(@tests $fresh;
            versions_are_numbered_per_bot_and_kept_once,
            an_alias_moves_only_from_where_it_points,
            a_deploy_is_seen_by_another_process_within_seconds,
            a_secret_is_made_once_and_shared,
        );
    };
    (@tests $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fresh = $fresh.await;
                $crate::contract::$check(&fresh.first, &fresh.second).await;
            }
        )*
    };
}

/// The first process to ask for a secret makes it; every process then gets that one.
pub async fn a_secret_is_made_once_and_shared(r: &impl FlowRegistry, other: &impl FlowRegistry) {
    assert_eq!(r.secret("web".into(), [1; 32]).await.expect("secret"), [1; 32], "the first is kept");
    assert_eq!(other.secret("web".into(), [2; 32]).await.expect("secret"), [1; 32], "another process gets it");
    assert_eq!(r.secret("web".into(), [3; 32]).await.expect("secret"), [1; 32], "and so does the first again");
    assert_eq!(other.secret("other".into(), [4; 32]).await.expect("secret"), [4; 32], "secrets are by name");
}

fn source(commit: &str) -> super::ports::Source {
    super::ports::Source { commit: commit.into(), author: "Ada <ada@example.com>".into(), message: "m".into() }
}

fn deploy(bot: &str, env: &str, from: Option<u64>, to: u64) -> super::ports::Deploy {
    super::ports::Deploy {
        seq: 0,
        bot: bot.into(),
        environment: env.into(),
        from,
        to,
        action: "deploy".into(),
        by: "ada@host".into(),
        plan: "nothing waits".into(),
        at: 100 + to,
    }
}

pub async fn versions_are_numbered_per_bot_and_kept_once(r: &impl FlowRegistry, _: &impl FlowRegistry) {
    let v1 = r.register("a".into(), [1; 32], vec![1, 2, 3], source("c1"), 10).await.expect("register");
    assert_eq!((v1.number, v1.hash, v1.source.commit.as_str(), v1.at), (1, [1; 32], "c1", 10));
    let again = r.register("a".into(), [1; 32], vec![1, 2, 3], source("c9"), 20).await.expect("again");
    assert_eq!(again, v1, "a version registered again keeps its number, source and time");
    let v2 = r.register("a".into(), [2; 32], vec![4], source("c2"), 30).await.expect("register");
    assert_eq!(v2.number, 2);
    let b1 = r.register("b".into(), [1; 32], vec![1, 2, 3], source("c1"), 40).await.expect("another bot");
    assert_eq!(b1.number, 1, "numbers count per bot");
    assert_eq!(r.programs("a".into()).await.expect("programs"), [vec![1, 2, 3], vec![4]]);
    assert_eq!(r.program("a".into(), [2; 32]).await.expect("program"), Some(vec![4]));
    assert_eq!(r.program("b".into(), [2; 32]).await.expect("program"), None, "versions belong to a bot");
    assert_eq!(r.versions("a".into()).await.expect("versions"), [v1, v2]);
    assert!(r.versions("nobody".into()).await.expect("versions").is_empty());
}

pub async fn an_alias_moves_only_from_where_it_points(r: &impl FlowRegistry, _: &impl FlowRegistry) {
    let v1 = r.register("a".into(), [1; 32], vec![1], source("c1"), 10).await.expect("register");
    let v2 = r.register("a".into(), [2; 32], vec![2], source("c2"), 20).await.expect("register");
    assert_eq!(r.last_deploy().await.expect("last"), 0, "no deploys yet");
    assert!(r.environment("production".into()).await.expect("env").is_empty());
    let first = r.point(deploy("a", "production", None, 1)).await.expect("first deploy");
    assert!(matches!(r.point(deploy("a", "production", None, 2)).await, Err(StoreError::Conflict(_))), "already set");
    assert!(
        matches!(r.point(deploy("a", "production", Some(2), 1)).await, Err(StoreError::Conflict(_))),
        "it does not point at 2"
    );
    assert!(r.point(deploy("a", "production", Some(1), 7)).await.is_err(), "there is no version 7");
    let second = r.point(deploy("a", "production", Some(1), 2)).await.expect("second deploy");
    assert!(second > first);
    r.point(deploy("a", "staging", None, 1)).await.expect("another environment");
    assert_eq!(r.environment("production".into()).await.expect("env"), [v2]);
    assert_eq!(r.environment("staging".into()).await.expect("env"), [v1]);
    let history = r.deploys(Some("a".into()), 10).await.expect("deploys");
    let moves: Vec<_> = history.iter().map(|d| (d.environment.as_str(), d.from, d.to)).collect();
    assert_eq!(moves, [("staging", None, 1), ("production", Some(1), 2), ("production", None, 1)], "newest first");
    assert_eq!(history[1].seq, second);
    assert_eq!((history[1].by.as_str(), history[1].plan.as_str(), history[1].at), ("ada@host", "nothing waits", 102));
    assert_eq!(r.deploys(None, 1).await.expect("deploys").len(), 1, "a limit");
    assert!(r.deploys(Some("b".into()), 10).await.expect("deploys").is_empty());
    assert_eq!(r.last_deploy().await.expect("last"), history[0].seq);
}

pub async fn a_deploy_is_seen_by_another_process_within_seconds(r: &impl FlowRegistry, other: &impl FlowRegistry) {
    r.register("a".into(), [1; 32], vec![1], source("c1"), 10).await.expect("register");
    let before = other.last_deploy().await.expect("last");
    let waiting = other.deployed_after(before);
    let deploying = async {
        // After the other side has started waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        r.point(deploy("a", "production", None, 1)).await.expect("deploy")
    };
    let (seen, seq) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(waiting, deploying) })
        .await
        .expect("the other process saw the deploy within 10 s");
    assert_eq!(seen.expect("waits"), seq);
    // A deploy already made is seen at once.
    let seen = tokio::time::timeout(Duration::from_secs(2), other.deployed_after(before)).await.expect("at once");
    assert_eq!(seen.expect("waits"), seq);
}
