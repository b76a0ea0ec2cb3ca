//! `botc serve`'s web chat through real HTTP on loopback.

use crate::harness;
use crate::harness::Server;
use crate::load;
use botc_runtime::clock::ManualClock;
use botc_serve::ports::{Bus, HistoryQueue, SessionStore, TimerStore, Work};
use botc_serve::{Bot, Embedded, Options, SqliteHistory, history_path};
use serde_json::{Value, json};
use std::sync::Arc;

const FLOW: &str = r#"
flow: shop
start: ask_size
vars:
  size: text
nodes:
  ask_size:
    ask: "Hi {{ user.name }}! Which size?"
    into: size
    expect: { choice: [small, large] }
    next: pause
  pause:
    wait: 1s
    next: remind
  remind:
    say: "Your {{ size }} order is ready, {{ user.name }}."
    next: done
  done:
    end:
"#;

/// A fresh data directory per test.
fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

async fn start(options: Options, capacity: usize, dir: &std::path::Path) -> Server {
    start_flow(FLOW, options, capacity, dir).await
}

async fn start_flow(flow: &str, options: Options, capacity: usize, dir: &std::path::Path) -> Server {
    crate::harness::start(vec![Bot::web("shop", "Shop", Arc::new(load(flow)))], options, capacity, dir).await
}

impl Server {
    /// Messages after `after`, waiting up to `wait` seconds for the first.
    async fn messages(&self, conv: &str, after: u64, wait: u64) -> Vec<Value> {
        let url = format!("/api/bots/shop/conversations/{conv}/messages?after={after}&wait={wait}");
        let v: Value = self.get(&url).await.json().await.expect("json");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Ada says hello on `conv` and the bot asks her for a size.
    async fn greet(&self, conv: &str) {
        let url = format!("/api/bots/shop/conversations/{conv}/messages");
        self.post(&url, r#"{"text": "hello", "user": "Ada"}"#).await;
        self.expect(conv, "Hi Ada! Which size?").await;
    }

    /// Long-polls until the user's own message `text` is in the transcript.
    async fn expect_user(&self, conv: &str, text: &str) {
        self.poll_until("shop", conv, |seen| seen.iter().any(|m| m["from"] == "user" && m["text"] == text)).await;
    }

    /// Polls until a message from the bot or system with `text` shows up.
    async fn expect(&self, conv: &str, text: &str) -> Vec<Value> {
        self.expect_in("shop", conv, text).await
    }

    /// Polls until a message with `text` shows up in `bot`'s conversation `conv`.
    async fn expect_in(&self, bot: &str, conv: &str, text: &str) -> Vec<Value> {
        self.poll_until(bot, conv, |seen| seen.iter().any(|m| m["text"] == text)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_http_with_buttons_and_a_timer() {
    let dir = data_dir();
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let s = start_on(clock.clone(), dir.path()).await;
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hello", "user": "Ada"}"#).await;
    assert_eq!(r.status(), 202);
    let seen = s.expect("c1", "Hi Ada! Which size?").await;
    let prompt = seen.iter().find(|m| m["text"] == "Hi Ada! Which size?").expect("prompt");
    assert_eq!(
        prompt["buttons"],
        json!([{"label": "small", "value": "small", "url": null}, {"label": "large", "value": "large", "url": null}])
    );
    assert_eq!(seen[0], json!({"seq": 1, "from": "user", "text": "hello", "buttons": [], "at": 1_700_000_000}));
    // The graph view knows where the conversation waits.
    let g: Value = s.get("/api/bots/shop/graph?conversation=c1").await.json().await.expect("json");
    let names: Vec<&str> = g["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["name"].as_str()).collect();
    let ask = names.iter().position(|&n| n == "ask_size").expect("ask_size");
    assert_eq!(g["waiting_at"], json!(ask), "{g}");
    assert_eq!(g["nodes"][ask]["waiting"], json!(1), "{g}");
    assert_eq!(g["start"], json!(ask), "{g}");
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "large"}"#).await;
    assert_eq!(r.status(), 202);
    // The `wait: 1s` reminder arrives through the timer scheduler and the bus.
    // The reminder comes from a timer event, which still knows who the user is.
    s.advance_until(&clock, "c1", "Your large order is ready, Ada.").await;
    let seen = s.expect("c1", "The conversation has ended.").await;
    // Writing again starts over; its timer must not be mistaken for the first one.
    let after = seen.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
    assert_eq!(
        s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "again", "user": "Ada"}"#).await.status(),
        202
    );
    assert_eq!(s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await.status(), 202);
    let again = s.advance_until(&clock, "c1", "Your small order is ready, Ada.").await;
    let again: Vec<&Value> = again.iter().filter(|m| m["seq"].as_u64().unwrap_or(0) > after).collect();
    assert!(again.iter().any(|m| m["text"] == "Your small order is ready, Ada."), "{again:#?}");
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.expect("get").text().await.expect("text");
    for line in [
        "botc_events_accepted_total 4",
        "botc_replies_sent_total 4",
        "botc_node_visits_total{bot=\"shop\",node=\"ask_size\"} 2",
        "botc_node_visits_total{bot=\"shop\",node=\"remind\"} 2",
        "botc_timers_fired_total 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_answers() {
    let (dir, dir2) = (data_dir(), data_dir());
    let s = start(Options { body_limit: 1024, ..Options::default() }, 100, dir.path()).await;
    for (path, body, status, needle) in [
        ("/api/bots/nope/conversations/c1/messages", "{}", 404, "no bot `nope`"),
        ("/api/bots/shop/conversations/c1/messages", "not json", 400, "not JSON"),
        ("/api/bots/shop/conversations/c1/messages", r#"{"txt": "hi"}"#, 400, "or {"),
        ("/api/bots/shop/conversations/bad%20id/messages", r#"{"text": "hi"}"#, 400, "conversation ids"),
    ] {
        let r = s.post(path, body).await;
        assert_eq!(r.status(), status, "{path} {body}");
        let text = r.text().await.expect("body");
        assert!(text.contains(needle), "{path} {body}: {text}");
    }
    let big = format!(r#"{{"text": "{}"}}"#, "x".repeat(4096));
    let r = s.post("/api/bots/shop/conversations/c1/messages", &big).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("body").contains("over the 1024 byte limit"));
    let s2 = start(Options::default(), 100, dir2.path()).await;
    let long = format!(r#"{{"text": "{}"}}"#, "y".repeat(5000));
    let r = s2.post("/api/bots/shop/conversations/c1/messages", &long).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("body").contains("at most 4096 characters"));
    let r = s.post("/api/bots/shop/conversations/bad%20id/handback", "").await;
    assert_eq!(r.status(), 400);
    let health = s.client.get(format!("{}/healthz", s.base)).send().await.expect("get");
    assert_eq!(health.status(), 200);
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.expect("get").text().await.expect("text");
    for line in [
        "botc_events_rejected_total{reason=\"unknown_bot\"} 1",
        "botc_events_rejected_total{reason=\"bad_request\"} 4",
        "botc_events_rejected_total{reason=\"too_large\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
}

/// Reading a transcript (or the flow view of a conversation) follows the same rules as
/// writing to it: a bad conversation id or a query value that is not a whole number is a 400
/// that says what is wrong, never read as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transcript_reads_get_clear_400s() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    for (path, status, needle) in [
        ("/api/bots/nope/conversations/c1/messages", 404, "no bot `nope`"),
        ("/api/bots/shop/conversations/bad%20id/messages", 400, "conversation ids"),
        ("/api/bots/shop/conversations/c1/messages?after=x", 400, "`after` must be a whole number"),
        ("/api/bots/shop/conversations/c1/messages?after=-1", 400, "not `-1`"),
        ("/api/bots/shop/conversations/c1/messages?wait=soon", 400, "`wait` must be whole seconds"),
        ("/api/bots/shop/conversations/c1/messages?after=0&wait=0", 200, "\"messages\""),
        ("/api/bots/shop/graph?conversation=bad%20id", 400, "conversation ids"),
        ("/api/bots/shop/graph?conversation=c1", 200, "\"nodes\""),
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        let text = r.text().await.expect("body");
        assert!(text.contains(needle), "{path}: {text}");
    }
}

/// A client that sends its own message id may retry a POST whose answer it lost: the same id
/// is taken once (202 both times, the second marked a duplicate), and answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_the_clients_id_is_taken_once() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    s.greet("c1").await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small", "id": "m-1"}"#).await;
        assert_eq!(r.status(), 202);
        answers.push(r.json::<Value>().await.expect("json"));
    }
    assert_eq!(answers[0]["event"], answers[1]["event"]);
    assert_eq!((answers[0]["duplicate"].as_bool(), answers[1]["duplicate"].as_bool()), (Some(false), Some(true)));
    // A later message: events of one conversation are stepped in order, so once it is in, a
    // duplicate published before it would be too.
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "later", "id": "m-2"}"#).await;
    assert_eq!(r.status(), 202);
    s.expect_user("c1", "later").await;
    let smalls = transcript(&s, "c1").await.iter().filter(|m| m["from"] == "user" && m["text"] == "small").count();
    assert_eq!(smalls, 1, "the retried message was taken twice");
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hi", "id": "not ok"}"#).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("`id` is your own id"));
}

/// A hand-back reaches only a conversation that exists: one that does not is a 404, and
/// nothing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_back_needs_a_conversation_that_exists() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    let r = s.post("/api/bots/shop/conversations/nobody/handback", "").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("bot `shop` has no conversation `nobody`"));
    assert!(transcript(&s, "nobody").await.is_empty(), "a hand-back started a conversation");
    s.greet("c1").await;
    let r = s.post("/api/bots/shop/conversations/c1/handback", "").await;
    assert_eq!(r.status(), 202);
}

/// Operator actions with a token configured: hand-back and the waiting counts need
/// `Authorization: Bearer TOKEN`; a missing or wrong one (also one that differs only in its
/// last character, or is a prefix) is a 401 that names the scheme, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_need_the_operator_token() {
    let dir = data_dir();
    let token = "s3cret-operator-token-0123456789";
    let options = Options {
        operators: botc_serve::Operators::Token(botc_serve::Secret::new(token.into())),
        ..Options::default()
    };
    let s = start(options, 100, dir.path()).await;
    s.greet("c1").await;
    let hand_back = |auth: Option<String>| {
        let mut r = s.client.post(format!("{}/api/bots/shop/conversations/c1/handback", s.base));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let wrong_last = format!("Bearer {}x", &token[..token.len() - 1]);
    let prefix = format!("Bearer {}", &token[..8]);
    for attempt in
        [None, Some("Bearer nope".to_string()), Some(wrong_last), Some(prefix), Some(format!("Basic {token}"))]
    {
        let r = hand_back(attempt.clone()).await.expect("answers");
        assert_eq!(r.status(), 401, "{attempt:?}");
        assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        assert!(r.text().await.expect("body").contains("Authorization: Bearer"));
    }
    let graph = |auth: Option<&str>| {
        let mut r = s.client.get(format!("{}/api/bots/shop/graph", s.base));
        if let Some(a) = auth {
            r = r.header("authorization", format!("Bearer {a}"));
        }
        async move { r.send().await.expect("graph").json::<Value>().await.expect("json") }
    };
    let public = graph(None).await;
    assert!(public["nodes"].as_array().is_some_and(|n| !n.is_empty()), "the graph itself is public");
    assert!(public["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["waiting"].is_null())), "{public}");
    assert!(public["counted"].is_null());
    let counted = graph(Some(token)).await;
    let waiting: u64 = counted["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["waiting"].as_u64()).sum();
    assert_eq!(waiting, 1, "an operator sees the one conversation waiting: {counted}");
    let r = hand_back(Some(format!("Bearer {token}"))).await.expect("answers");
    assert_eq!(r.status(), 202);
}

/// With no token on a public address, operator actions are off: 403, saying what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_are_off_without_a_token_where_they_must_not_be_open() {
    let dir = data_dir();
    let s = start(Options { operators: botc_serve::Operators::Closed, ..Options::default() }, 100, dir.path()).await;
    s.greet("c1").await;
    let r = s.post("/api/bots/shop/conversations/c1/handback", "").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("body").contains("[admin] token_env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_bus_answers_503_with_retry_after() {
    let dir = data_dir();
    let s = start(Options::default(), 0, dir.path()).await;
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hi"}"#).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_self_contained() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    let page = s.client.get(format!("{}/", s.base)).send().await.expect("get").text().await.expect("html");
    assert!(page.contains("<title>botc</title>"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "the page loads nothing from outside");
    let bots: Value =
        s.client.get(format!("{}/api/bots", s.base)).send().await.expect("get").json().await.expect("json");
    assert_eq!(bots, json!({"bots": [{"id": "shop", "name": "Shop", "platform": "web"}]}));
}

/// The whole transcript of a conversation, as the page would show it.
async fn transcript(s: &Server, conv: &str) -> Vec<Value> {
    s.messages(conv, 0, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_conversations_and_pending_timers() {
    let dir = data_dir();
    // Time moves only when the test says: the timer cannot fire before the restart.
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let s = start_on(clock.clone(), dir.path()).await;
    s.greet("c1").await;
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    s.expect_user("c1", "small").await;
    let before = transcript(&s, "c1").await;
    s.shut_down().await;
    assert_eq!(Embedded::open(dir.path(), 2, 100).expect("reopens").pending().await.expect("timers"), 1);

    let s = start_on(clock.clone(), dir.path()).await;
    assert_eq!(transcript(&s, "c1").await, before, "the transcript survives the restart, the timer still waits");
    // The timer set before the restart fires after it, and the session still knows the size.
    let seen = s.advance_until(&clock, "c1", "Your small order is ready, Ada.").await;
    let seqs: Vec<u64> = seen.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "positions continue: {seqs:?}");
    s.shut_down().await;
}

/// The shop bot on a manual clock.
async fn start_on(clock: Arc<ManualClock>, dir: &std::path::Path) -> Server {
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    crate::harness::start_with(bots, Options::default(), 100, dir, clock, |p, _| p).await
}

impl Server {
    /// Moves the clock a second at a time until `text` shows up in `conv` (at most a minute
    /// of clock time); returns the conversation's whole transcript.
    async fn advance_until(&self, clock: &ManualClock, conv: &str, text: &str) -> Vec<Value> {
        for _ in 0..60 {
            clock.advance(std::time::Duration::from_secs(1));
            let seen = self.messages(conv, 0, 0).await;
            if seen.iter().any(|m| m["text"] == text) {
                return seen;
            }
            // Give the scheduler and the worker a moment of real time to take the step.
            let last = seen.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
            let more = self.messages(conv, last, 1).await;
            if more.iter().any(|m| m["text"] == text) {
                return self.messages(conv, 0, 0).await;
            }
        }
        panic!("no message {text:?} within a minute of clock time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_whole_bus_changes_nothing() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    for conv in ["c1", "c2", "c3"] {
        let url = format!("/api/bots/shop/conversations/{conv}/messages");
        s.greet(conv).await;
        s.post(&url, r#"{"button": "nope"}"#).await;
        s.post(&url, r#"{"button": "large"}"#).await;
        s.expect(conv, "The conversation has ended.").await;
    }
    let keys: Vec<String> = ["c1", "c2", "c3"].iter().map(|c| format!("shop/web/{c}")).collect();
    let sessions = s.store.load(&keys).await.expect("sessions");
    let mut transcripts = Vec::new();
    for conv in ["c1", "c2", "c3"] {
        transcripts.push(transcript(&s, conv).await);
    }
    s.shut_down().await;

    // Deliver every event again, from the start of each partition.
    let store = Embedded::open(dir.path(), 2, 100).expect("reopens");
    let mut replayed = 0;
    for p in 0..store.partitions() {
        replayed += store.committed(&harness::lease(&store, Work::Partition(p)).await).await.expect("position");
    }
    // Per conversation: hello, nope, large and the `wait` timer.
    assert_eq!(replayed, 12, "the bus holds every event of the conversations");
    for p in 0..store.partitions() {
        store.rewind(p, 0).await.expect("rewinds");
    }
    assert_eq!(store.depth().await.expect("depth"), replayed);
    store.close();
    drop(store);

    let history = SqliteHistory::open_read_only(&history_path(dir.path())).await.expect("history");
    let recorded = history.count().await.expect("count");
    // Per conversation: 4 events in (hello, an invalid answer, large, the timer) and 4 out.
    let c1 = history.transcript("shop", "web:c1", false, 100).await.expect("transcript");
    history.close().await;
    let lines: Vec<String> = c1.iter().map(|r| format!("{:?} {} {}", r.direction, r.kind, r.text)).collect();
    assert_eq!(
        lines,
        [
            "In text hello",
            "Out message Hi Ada! Which size?",
            "In button nope",
            "Out message Hi Ada! Which size?",
            "In button large",
            "In timer timer 1 fired",
            "Out message Your large order is ready, Ada.",
            "Out note The conversation has ended.",
        ],
        "{c1:#?}"
    );
    assert_eq!(recorded, 3 * lines.len() as u64);

    let s = start(Options::default(), 100, dir.path()).await;
    let consumed = async {
        while s.store.depth().await.expect("depth") > 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), consumed).await.expect("the replay was consumed");
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.expect("get").text().await.expect("text");
    assert!(metrics.lines().any(|l| l == format!("botc_replays_skipped_total {replayed}")), "{metrics}");
    assert!(metrics.lines().any(|l| l == "botc_steps_total 0"), "no event ran twice:\n{metrics}");
    assert_eq!(s.store.load(&keys).await.expect("sessions"), sessions, "sessions are untouched");
    for (conv, before) in ["c1", "c2", "c3"].iter().zip(&transcripts) {
        assert_eq!(&transcript(&s, conv).await, before, "no message was sent twice in {conv}");
    }
    s.shut_down().await;
    let history = SqliteHistory::open_read_only(&history_path(dir.path())).await.expect("history");
    assert_eq!(history.count().await.expect("count"), recorded, "the replay added no history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_serves_one_botc_at_a_time_with_its_partition_count() {
    let dir = data_dir();
    let first = Embedded::open(dir.path(), 2, 100).expect("opens");
    let e = Embedded::open(dir.path(), 2, 100).err().expect("a second open is refused").to_string();
    assert!(e.contains("in use by another botc") && e.contains("--data-dir"), "{e}");
    first.close();
    drop(first);
    let e = Embedded::open(dir.path(), 3, 100).err().expect("another partition count is refused").to_string();
    assert!(e.contains("created with 2 bus partitions, not 3") && e.contains("partitions = 2"), "{e}");
    Embedded::open(dir.path(), 2, 100).expect("the same count opens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_flow_version_carries_waiting_conversations_over() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    for conv in ["c1", "c2"] {
        s.greet(conv).await;
    }
    s.shut_down().await;

    // Deploy a version with new wording: both conversations wait at ask_size, which is
    // still there, so they carry on where they were.
    let v2 = FLOW.replace("Your {{ size }} order is ready", "Your {{ size }} order is ready for pickup");
    let s = start_flow(&v2, Options::default(), 100, dir.path()).await;
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    let seen = s.expect("c1", "Your small order is ready for pickup, Ada.").await;
    assert_eq!(seen.iter().filter(|m| m["text"] == "Hi Ada! Which size?").count(), 1, "no restart: {seen:#?}");
    s.shut_down().await;

    // A version without the node c2 waits at: c2 starts over.
    let v3 = FLOW.replace("ask_size", "pick_size");
    let s = start_flow(&v3, Options::default(), 100, dir.path()).await;
    s.post("/api/bots/shop/conversations/c2/messages", r#"{"button": "large"}"#).await;
    let asked_twice = |seen: &[Value]| seen.iter().filter(|m| m["text"] == "Hi Ada! Which size?").count() == 2;
    let seen = s.poll_until("shop", "c2", asked_twice).await;
    assert_eq!(seen.iter().filter(|m| m["text"] == "Hi Ada! Which size?").count(), 2, "asked again: {seen:#?}");
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_store_stops_events_get_503_and_readyz_says_so() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    let ready = s.client.get(format!("{}/readyz", s.base)).send().await.expect("get");
    assert_eq!(ready.status(), 200);
    s.store.close();
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hi"}"#).await;
    assert_eq!(r.status(), 503, "an event that cannot be stored is not acknowledged");
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(r.text().await.expect("body").contains("cannot store events right now"));
    let ready = s.client.get(format!("{}/readyz", s.base)).send().await.expect("get");
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.expect("body").contains("the store is closed"));
    let metrics = s.client.get(format!("{}/metrics", s.base)).send().await.expect("get").text().await.expect("text");
    assert!(metrics.lines().any(|l| l == "botc_events_rejected_total{reason=\"store_error\"} 1"), "{metrics}");
}

/// While the store cannot write (a full disk: every write to the data file fails, so redb
/// stops using the file), events are refused with 503 and /readyz is a 503 that says why;
/// once writes work again both recover by themselves (the writer tries an empty write each
/// second and reopens the file), and what was acknowledged before is all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_cannot_write_readyz_says_why_and_both_recover_by_themselves() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    s.greet("c1").await;
    s.store.inject_write_failure(Some("No space left on device (os error 28)"));
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    assert_eq!(r.status(), 503, "an event that cannot be stored is not acknowledged");
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let ready = s.client.get(format!("{}/readyz", s.base)).send().await.expect("get");
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.expect("body").contains("No space left on device"));
    // Space again: /readyz recovers with no event sent, then events are taken again.
    s.store.inject_write_failure(None);
    let recovered = async {
        loop {
            let r = s.client.get(format!("{}/readyz", s.base)).send().await.expect("get");
            if r.status() == 200 {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), recovered).await.expect("ready again within seconds");
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    assert_eq!(r.status(), 202);
    s.expect_user("c1", "small").await;
    let seen = transcript(&s, "c1").await;
    assert!(seen.iter().any(|m| m["text"] == "hello"), "what was taken before the failure is kept: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_conversations_are_forgotten_and_their_history_kept() {
    use botc_serve::ports::{TimerStore, Transcript};
    let dir = data_dir();
    // An hour's wait: the reminder timer is still pending when the test looks. The clock
    // stands at 00:00:30 on some day: events are stamped with it.
    let then = 1_700_006_400 + 30; // 2023-11-15T00:00:30Z
    let clock = Arc::new(ManualClock::at(then * 1000));
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(&FLOW.replace("wait: 1s", "wait: 1h"))))];
    let s = crate::harness::start_with(bots, Options::default(), 100, dir.path(), clock, |p, _| p).await;
    for conv in ["c1", "c2"] {
        s.greet(conv).await;
    }
    // c1 now waits on its reminder timer.
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    s.expect_user("c1", "small").await;
    s.shut_down().await;
    let store = Embedded::open(dir.path(), 2, 100).expect("reopens");
    let keys = ["shop/web/c1".to_string(), "shop/web/c2".to_string()];
    assert_eq!(store.pending().await.expect("timers"), 1);
    // Idle times are kept to the minute: both were last touched in the minute from 00:00.
    assert_eq!(store.forget_idle(then - 30, 100).await, Ok(0), "nothing was idle before 00:00");
    assert_eq!(store.load(&keys).await.expect("sessions").len(), 2);
    assert_eq!(store.forget_idle(then - 29, 100).await, Ok(2));
    assert!(store.load(&keys).await.expect("sessions").is_empty());
    assert!(store.after("shop/web/c1", 0).await.expect("transcript").is_empty());
    assert_eq!(store.pending().await.expect("timers"), 0, "the idle conversation's timer went too");
    store.close();
    let history = SqliteHistory::open_read_only(&history_path(dir.path())).await.expect("history");
    assert_eq!(history.transcript("shop", "web:c1", false, 100).await.expect("history").len(), 3, "history stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_on_one_flow_both_carry_conversations_over() {
    let dir = data_dir();
    let bots = |flow: &str| {
        let program = Arc::new(load(flow));
        vec![Bot::web("shop", "Shop", program.clone()), Bot::web("shop2", "Shop 2", program)]
    };
    let s = crate::harness::start(bots(FLOW), Options::default(), 100, dir.path()).await;
    s.greet("c1").await;
    s.post("/api/bots/shop2/conversations/c1/messages", r#"{"text": "hello", "user": "Bo"}"#).await;
    s.expect_in("shop2", "c1", "Hi Bo! Which size?").await;
    s.shut_down().await;

    let v2 = FLOW.replace("Your {{ size }} order is ready", "Your {{ size }} order is ready for pickup");
    let s = crate::harness::start(bots(&v2), Options::default(), 100, dir.path()).await;
    for (bot, name) in [("shop", "Ada"), ("shop2", "Bo")] {
        s.post(&format!("/api/bots/{bot}/conversations/c1/messages"), r#"{"button": "small"}"#).await;
        let seen = s.expect_in(bot, "c1", &format!("Your small order is ready for pickup, {name}.")).await;
        let asked = seen.iter().filter(|m| m["text"] == format!("Hi {name}! Which size?")).count();
        assert_eq!(asked, 1, "{bot}'s conversation moved to the new version without a restart: {seen:#?}");
    }
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_database_from_before_migrations_is_upgraded_in_place() {
    let dir = data_dir();
    let path = history_path(dir.path());
    {
        // The schema botc 0.1 wrote, with one flow version in it.
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("creates");
        for sql in [
            "CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, bot TEXT NOT NULL, conversation TEXT NOT NULL, user_id TEXT NOT NULL, platform TEXT NOT NULL, direction TEXT NOT NULL CHECK (direction IN ('in', 'out')), kind TEXT NOT NULL, text TEXT NOT NULL, buttons TEXT NOT NULL, at INTEGER NOT NULL)",
            "CREATE TABLE flows (hash TEXT PRIMARY KEY, bot TEXT NOT NULL, bytecode BLOB NOT NULL, first_served INTEGER NOT NULL)",
            "INSERT INTO flows VALUES ('00ff', 'shop', x'0102', 7)",
            "INSERT INTO history (id, bot, conversation, user_id, platform, direction, kind, text, buttons, at) VALUES ('e1', 'shop', 'c1', 'web:c1', 'web', 'in', 'text', 'hi', '[]', 7)",
            "PRAGMA user_version = 1",
        ] {
            sqlx::query(sql).execute(&mut db).await.expect(sql);
        }
    }
    use botc_serve::ports::FlowRegistry;
    let history = SqliteHistory::open(&path).await.expect("upgrades");
    assert_eq!(history.programs("shop".into()).await.expect("versions"), [vec![1u8, 2]], "the old version is kept");
    // The same flow served by a second bot is that bot's version too; numbers go on.
    let source = botc_serve::ports::Source::default();
    history.register("shop2".into(), [0; 32], vec![9], source.clone(), 8).await.expect("registers");
    let v = history.register("shop".into(), [0; 32], vec![9], source, 8).await.expect("registers");
    assert_eq!(v.number, 2, "the version from before migrations is number 1");
    assert_eq!(history.programs("shop".into()).await.expect("versions"), [vec![1u8, 2], vec![9]]);
    assert_eq!(history.programs("shop2".into()).await.expect("versions"), [vec![9u8]]);
    assert_eq!(history.count().await.expect("count"), 1, "history is kept");
    history.close().await;
    // Opening it again runs nothing twice.
    let history = SqliteHistory::open(&path).await.expect("opens again");
    assert_eq!(history.programs("shop2".into()).await.expect("versions"), [vec![9u8]]);
    history.close().await;
}

#[test]
fn a_data_directory_from_before_channel_keys_is_refused_with_what_to_do() {
    let dir = data_dir();
    {
        // What botc wrote before keys named their channel: a session, and no format mark.
        const SESSIONS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("sessions");
        let db = redb::Database::create(dir.path().join("botc.redb")).expect("creates");
        let txn = db.begin_write().expect("txn");
        txn.open_table(SESSIONS).expect("table").insert("shop/c1", [3u8, 0, 0, 0, 0].as_slice()).expect("insert");
        txn.commit().expect("commit");
    }
    let e = Embedded::open(dir.path(), 2, 100).err().expect("refused").to_string();
    assert!(e.contains("earlier botc") && e.contains("empty --data-dir"), "{e}");
    // An empty directory is simply set up.
    let fresh = data_dir();
    Embedded::open(fresh.path(), 2, 100).expect("a new directory opens");
}

/// `/metrics` on a listener of its own (inside the network only): the main address no longer
/// serves it; both keep the probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    use botc_serve::{Listeners, Ports, serve_with};
    let dir = data_dir();
    let store = Arc::new(Embedded::open(dir.path(), 2, 100).expect("store"));
    let history = Arc::new(SqliteHistory::open(&history_path(dir.path())).await.expect("history"));
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let (base, private) = (
        format!("http://{}", main.local_addr().expect("addr")),
        format!("http://{}", metrics.local_addr().expect("addr")),
    );
    let clock = Arc::new(botc_runtime::clock::SystemClock::default());
    let ports = Ports::embedded(store.clone(), history.clone(), clock);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let listeners = Listeners { main, metrics: Some(metrics) };
    let task = tokio::spawn(serve_with(listeners, bots, Options::default(), ports, async move {
        let _ = rx.await;
    }));
    let get = |url: String| async move {
        let r = reqwest::get(url).await.expect("answers");
        (r.status().as_u16(), r.text().await.expect("body"))
    };
    assert_eq!(get(format!("{base}/metrics")).await.0, 404, "not on the public address");
    let (status, body) = get(format!("{private}/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("botc_events_received_total"), "{body}");
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(get(format!("{base}{probe}")).await.0, 200, "{probe} on the main address");
        assert_eq!(get(format!("{private}{probe}")).await.0, 200, "{probe} on the metrics address");
    }
    assert_eq!(get(format!("{private}/api/bots")).await.0, 404, "the API is not on the metrics address");
    let _ = tx.send(());
    task.await.expect("task").expect("serve ends cleanly");
    store.close();
    history.close().await;
}

/// A session store whose scans wait for the test to let them go.
struct HeldScans {
    inner: Arc<Embedded>,
    started: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl SessionStore for HeldScans {
    fn load<'a>(
        &'a self,
        keys: &'a [String],
    ) -> botc_serve::ports::Fut<
        'a,
        Result<std::collections::HashMap<String, botc_serve::ports::Found>, botc_serve::ports::StoreError>,
    > {
        self.inner.load(keys)
    }
    fn count(&self) -> botc_serve::ports::Fut<'_, Result<u64, botc_serve::ports::StoreError>> {
        self.inner.count()
    }
    fn scan<'a>(
        &'a self,
        prefix: &'a str,
        max: usize,
    ) -> botc_serve::ports::Fut<'a, Result<Vec<(String, botc_serve::ports::Stored)>, botc_serve::ports::StoreError>>
    {
        Box::pin(async move {
            self.started.notify_one();
            let _go = self.release.acquire().await.expect("open");
            self.inner.scan(prefix, max).await
        })
    }
    fn forget_idle(
        &self,
        before: u64,
        max: usize,
    ) -> botc_serve::ports::Fut<'_, Result<usize, botc_serve::ports::StoreError>> {
        self.inner.forget_idle(before, max)
    }
}

/// Counting waiting conversations reads every session: one count runs at a time, and a
/// second asked for meanwhile is a 429 with Retry-After, not another scan piling up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_count_of_waiting_conversations_runs_at_a_time() {
    let dir = data_dir();
    let held = Arc::new(std::sync::OnceLock::<Arc<HeldScans>>::new());
    let h = held.clone();
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let clock = Arc::new(botc_runtime::clock::SystemClock::default());
    let s = harness::start_with(bots, Options::default(), 100, dir.path(), clock, move |mut ports, store| {
        let scans = Arc::new(HeldScans {
            inner: store.clone(),
            started: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        });
        let _ = h.set(scans.clone());
        ports.sessions = scans;
        ports
    })
    .await;
    let scans = held.get().expect("adapted").clone();
    let url = format!("{}/api/bots/shop/graph", s.base);
    let started = scans.started.notified();
    let first = tokio::spawn(s.client.get(url.clone()).send());
    started.await;
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), s.client.get(url.clone()).send())
        .await
        .expect("answered at once, not queued behind the first count")
        .expect("answers");
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    scans.release.add_permits(10);
    let first = first.await.expect("task").expect("answers");
    assert_eq!(first.status(), 200);
    assert_eq!(s.client.get(url).send().await.expect("answers").status(), 200, "the next count runs");
}

/// Reads from `stream` until the server closes it; how long that took (panics after 10 s).
async fn closed_within(stream: &mut tokio::net::TcpStream) -> std::time::Duration {
    use botc_runtime::clock::Clock;
    use tokio::io::AsyncReadExt;
    // The server's timeouts run on real time, so this measures on it too.
    let clock = botc_runtime::clock::SystemClock::default();
    let started = clock.monotonic();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return clock.monotonic() - started,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
}

/// Slowloris: a connection that sends nothing, one that sends a header every half second and
/// never finishes, and one idle after its request are all closed once the head's time
/// (1 s here) is up; meanwhile the server answers everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_when_their_time_is_up() {
    use tokio::io::AsyncWriteExt;
    let dir = data_dir();
    let http = botc_serve::transport::Limits { header_read: std::time::Duration::from_secs(1), max_connections: 100 };
    let s = start(Options { http, ..Options::default() }, 100, dir.path()).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    let mut dribbling = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    dribbling.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("writes");
    let drip = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if dribbling.write_all(format!("X-{i}: y\r\n").as_bytes()).await.is_err() {
                return closed_within(&mut dribbling).await;
            }
            if i > 40 {
                panic!("still open after 20 s of dribbling");
            }
        }
        unreachable!()
    });
    let mut idle = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
    assert_eq!(s.client.get(format!("{}/healthz", s.base)).send().await.expect("served").status(), 200);
    for (what, t) in
        [("silent", closed_within(&mut silent).await), ("idle after a request", closed_within(&mut idle).await)]
    {
        assert!(t < std::time::Duration::from_secs(5), "{what}: closed after {t:?}");
    }
    drip.await.expect("the dribbling connection was closed");
}

/// At most `max_connections` are open: the next waits until one closes, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    let dir = data_dir();
    let http = botc_serve::transport::Limits { header_read: std::time::Duration::from_secs(30), max_connections: 1 };
    let s = start(Options { http, ..Options::default() }, 100, dir.path()).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let hog = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    let url = format!("{}/healthz", s.base);
    let client = reqwest::Client::new();
    let mut waiting = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut waiting).await;
    assert!(early.is_err(), "a second connection was served while the cap was taken");
    drop(hog);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("served once the first closed")
        .expect("task")
        .expect("answers");
    assert_eq!(status, 200);
}

/// Control characters in a message are refused (NUL, an escape sequence, DEL, a C1 control),
/// tabs and line breaks are text; a user name loses its controls and direction overrides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_in_messages_and_stripped_from_names() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    for bad in
        [r#"{"text": "a\u0000b"}"#, r#"{"text": "\u001b[31mred"}"#, r#"{"button": "x\u007f"}"#, r#"{"text": "\u0085"}"#]
    {
        let r = s.post("/api/bots/shop/conversations/c1/messages", bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().await.expect("body").contains("control characters"), "{bad}");
    }
    assert!(transcript(&s, "c1").await.is_empty(), "a refused message started the conversation");
    let r = s
        .post(
            "/api/bots/shop/conversations/c1/messages",
            r#"{"text": "two\nlines\tand a tab", "user": "A\u202eda\u0007\n"}"#,
        )
        .await;
    assert_eq!(r.status(), 202);
    s.expect("c1", "Hi Ada! Which size?").await;
    s.expect_user("c1", "two\nlines\tand a tab").await;
}

/// A hand-off tells the web-chat user who is coming, never the flow's note for the agents
/// (it may hold an order, a phone number, an error); the history, which agents read, keeps
/// the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_note_reaches_the_agents_history_not_the_user() {
    const HANDOFF: &str = "flow: shop\nstart: ask\nvars:\n  phone: text\nnodes:\n  ask:\n    ask: \"Your phone?\"\n    into: phone\n    next: human\n  human:\n    handoff: orders\n    reason: \"Order API failed; call {{ phone }}\"\n";
    let dir = data_dir();
    let s = start_flow(HANDOFF, Options::default(), 100, dir.path()).await;
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hello"}"#).await;
    s.expect("c1", "Your phone?").await;
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "555-0101"}"#).await;
    let seen = s.expect("c1", "A person from our orders team will take it from here.").await;
    let told: Vec<&str> = seen.iter().filter(|m| m["from"] != "user").filter_map(|m| m["text"].as_str()).collect();
    assert!(told.iter().all(|t| !t.contains("555-0101") && !t.contains("Order API")), "{told:?}");
    // The note was committed with the message the user saw: it is still in the store's
    // queue or already shipped to history.sqlite (the queue is read first, so a record
    // shipped in between is found in the sink).
    let note = "Handed to the `orders` team: Order API failed; call 555-0101.";
    let queued = HistoryQueue::unshipped(&*s.store, 1000).await.expect("queue");
    let shipped = s.history.transcript("shop", "c1", true, 100).await.expect("history");
    let mut history = queued.into_iter().map(|(_, r)| r).chain(shipped);
    assert!(history.any(|r| r.kind == "note" && r.text == note), "the agents' note reaches the history");
}

/// A page on another site cannot post into a conversation through a visitor's browser
/// (CSRF): a form post or a `text/plain` body (which browsers send without asking) is a 415,
/// JSON from a foreign `Origin` a 403, a hand-back from one too, and nothing is stored. The
/// server's own page and a listed origin may post; the listed origin's preflight is
/// answered with CORS headers, a foreign one's is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_on_other_sites_cannot_post_and_listed_origins_can() {
    let dir = data_dir();
    let options = Options { allowed_origins: vec!["https://shop.example.com".into()], ..Options::default() };
    let s = start(options, 100, dir.path()).await;
    let url = format!("{}/api/bots/shop/conversations/c1/messages", s.base);
    let evil = "https://evil.example";
    for (kind, body) in [
        ("application/x-www-form-urlencoded", "text=hi"),
        ("text/plain", r#"{"text": "hi"}"#),
        ("", r#"{"text": "hi"}"#),
    ] {
        let mut req = s.client.post(&url).header("origin", evil).body(body);
        if !kind.is_empty() {
            req = req.header("content-type", kind);
        }
        let r = req.send().await.expect("answers");
        assert_eq!(r.status(), 415, "content type `{kind}`");
        assert!(r.text().await.expect("body").contains("Content-Type: application/json"));
    }
    let token = s.token("shop", "c1").await;
    let json = |origin: &str| {
        s.client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("origin", origin)
            .body(r#"{"text": "hello", "user": "Ada"}"#)
    };
    let r = json(evil).send().await.expect("answers");
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("body").contains("[web] allowed_origins"));
    let r = s.client.post(format!("{}/api/bots/shop/conversations/c1/handback", s.base)).header("origin", evil);
    assert_eq!(r.send().await.expect("answers").status(), 403, "a hand-back from a foreign page");
    assert!(transcript(&s, "c1").await.is_empty(), "a refused request was stored");

    // The server's own page, also behind a proxy that names the public host.
    let own = format!("http://{}", s.base.trim_start_matches("http://"));
    assert_eq!(json(&own).send().await.expect("answers").status(), 202);
    let proxied = json("https://bots.example.com").header("x-forwarded-host", "bots.example.com");
    assert_eq!(proxied.send().await.expect("answers").status(), 202);
    s.expect("c1", "Hi Ada! Which size?").await;
    // A listed site: its preflight is answered, its post taken, with CORS headers.
    let preflight = |origin: &str| {
        s.client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let r = preflight("https://shop.example.com").await.expect("answers");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "https://shop.example.com");
    let r = preflight(evil).await.expect("answers");
    assert!(r.headers().get("access-control-allow-origin").is_none(), "a foreign site's preflight was allowed");
    let r = json("https://shop.example.com").send().await.expect("answers");
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://shop.example.com");
}

/// Web conversations belong to whoever started them: the server issues each (a random id and
/// its token), and reading or writing one takes its token. An id alone gets a 401 that reads
/// the same whether the conversation exists or not, and changes nothing; an operator's token
/// reads any conversation but writes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_read_and_written_only_with_its_token() {
    let dir = data_dir();
    let operator = "s3cret-operator-token-0123456789";
    let options = Options {
        operators: botc_serve::Operators::Token(botc_serve::Secret::new(operator.into())),
        ..Options::default()
    };
    let s = start(options, 100, dir.path()).await;
    let issue = || async {
        let r = s.post_with("/api/bots/shop/conversations", &[], "").await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        let (id, token) = (v["conversation"].as_str().expect("id"), v["token"].as_str().expect("token"));
        assert!(id.len() == 32 && token.len() == 64, "{v}");
        (id.to_string(), token.to_string())
    };
    let (mine, my_token) = issue().await;
    let (theirs, their_token) = issue().await;
    assert_ne!(mine, theirs);
    let messages = |conv: &str| format!("{}/api/bots/shop/conversations/{conv}/messages", s.base);
    let send = |conv: &str, token: Option<&str>| {
        let mut r = s.client.post(messages(conv)).header("content-type", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.body(r#"{"text": "hello", "user": "Ada"}"#).send()
    };
    let read = |conv: &str, token: Option<&str>| {
        let mut r = s.client.get(format!("{}?after=0", messages(conv)));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(send(&mine, Some(&my_token)).await.expect("answers").status(), 202);
    s.poll_until("shop", &mine, |m| m.iter().any(|m| m["text"] == "Hi Ada! Which size?")).await;

    // Without the token, or with another conversation's (or a made-up one), nothing.
    let unknown = "0123456789abcdef0123456789abcdef";
    let mut refusals = Vec::new();
    for (conv, token) in [
        (&mine, None),
        (&mine, Some(&their_token)),
        (&mine, Some(&"ab".repeat(32))),
        (&unknown.to_string(), Some(&their_token)),
    ] {
        for r in [send(conv, token.map(|t| t.as_str())).await, read(conv, token.map(|t| t.as_str())).await] {
            let r = r.expect("answers");
            assert_eq!(r.status(), 401, "{conv} with {token:?}");
            assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
            refusals.push((token.is_some(), r.text().await.expect("body").replace(conv.as_str(), "ID")));
        }
        let graph = s.client.get(format!("{}/api/bots/shop/graph?conversation={conv}", s.base));
        let graph = match token {
            Some(t) => graph.bearer_auth(t),
            None => graph,
        };
        assert_eq!(graph.send().await.expect("answers").status(), 401, "where {conv} waits is not told");
    }
    assert!(refusals.iter().any(|(_, body)| body.contains("POST /api/bots/shop/conversations")), "{refusals:?}");
    // No existence oracle: a wrong token reads the same for a conversation that exists and
    // one that does not.
    let wrong: std::collections::BTreeSet<&String> = refusals.iter().filter(|(t, _)| *t).map(|(_, b)| b).collect();
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    let mine_seen = transcript_with(&s, &mine, &my_token).await;
    assert_eq!(
        mine_seen.iter().filter(|m| m["from"] == "user").count(),
        1,
        "a refused post was stored: {mine_seen:#?}"
    );

    // An operator reads any conversation, and writes none.
    let r = read(&mine, Some(operator)).await.expect("answers");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("body").contains("Hi Ada! Which size?"));
    assert_eq!(send(&mine, Some(operator)).await.expect("answers").status(), 401);
    // Starting a conversation of a bot that does not exist.
    let r = s.post_with("/api/bots/nope/conversations", &[], "").await;
    assert_eq!(r.status(), 404);
}

/// A transcript read with `token`.
async fn transcript_with(s: &Server, conv: &str, token: &str) -> Vec<Value> {
    let url = format!("{}/api/bots/shop/conversations/{conv}/messages?after=0", s.base);
    let v: Value = s.client.get(url).bearer_auth(token).send().await.expect("get").json().await.expect("json");
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// One client cannot take what is meant for everyone: over its address's budget, or its
/// conversation's, a message is a 429 with `Retry-After`, and nothing of it is stored; other
/// addresses (behind a proxy that names them) keep theirs; once the wait is over the client
/// is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_budget_gets_429_with_retry_after_and_nothing_is_stored() {
    use botc_runtime::platforms::limiter::Limit;
    let dir = data_dir();
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let minute = std::time::Duration::from_secs(60);
    let options = Options {
        admission: botc_serve::AdmissionLimits {
            per_client: Limit { rate: 6, period: minute, burst: 4 },
            per_conversation: Limit { rate: 3, period: minute, burst: 2 },
            polls_per_client: 16,
        },
        client_address_header: Some("X-Real-IP".into()),
        ..Options::default()
    };
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let s = harness::start_with(bots, options, 100, dir.path(), clock.clone(), |p, _| p).await;
    let s = &s;
    let from = |address: &'static str, conv: &'static str, text: &'static str| async move {
        let path = format!("/api/bots/shop/conversations/{conv}/messages");
        let mut headers = s.holder(&path).await;
        headers.push(("x-real-ip", address.to_string()));
        headers.push(("content-type", "application/json".into()));
        s.post_with(&path, &headers, &json!({ "text": text }).to_string()).await
    };
    // The conversation's budget: two at once.
    for text in ["one", "two"] {
        assert_eq!(from("203.0.113.1", "c1", text).await.status(), 202);
    }
    let r = from("203.0.113.1", "c1", "three").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("whole seconds");
    assert!((1..=20).contains(&retry), "a third of a minute at most: {retry}");
    assert!(r.text().await.expect("body").contains("retry in"));
    // The address's budget: four at once, over any conversations (the refusal above took none).
    for conv in ["c2", "c3"] {
        assert_eq!(from("203.0.113.1", conv, "hi").await.status(), 202, "{conv}");
    }
    assert_eq!(from("203.0.113.1", "c4", "hi").await.status(), 429, "the address's fifth");
    let start = s.post_with("/api/bots/shop/conversations", &[("x-real-ip", "203.0.113.1".into())], "").await;
    assert_eq!(start.status(), 429, "starting conversations draws on the same budget");
    // Another address is not held back.
    assert_eq!(from("198.51.100.7", "c5", "hi").await.status(), 202);
    // Nothing refused was stored.
    s.expect_user("c1", "two").await;
    let c1 = transcript(s, "c1").await;
    assert!(c1.iter().all(|m| m["text"] != "three"), "{c1:#?}");
    assert!(transcript(s, "c4").await.is_empty());
    assert!(s.metric("botc_events_rejected_total{reason=\"rate_limited\"} 3").await, "{}", s.metrics().await);
    // After the wait, served again.
    clock.advance(std::time::Duration::from_secs(retry));
    assert_eq!(from("203.0.113.1", "c1", "three").await.status(), 202);
}

/// Each address holds a few long-polls at most: one more is a 429 at once (not another held
/// connection), and a finished one gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_are_capped_per_address() {
    let dir = data_dir();
    let options = Options {
        admission: botc_serve::AdmissionLimits { polls_per_client: 2, ..Default::default() },
        ..Options::default()
    };
    let s = start(options, 100, dir.path()).await;
    s.greet("c1").await;
    let after = transcript(&s, "c1").await.last().and_then(|m| m["seq"].as_u64()).expect("seq");
    let path = format!("/api/bots/shop/conversations/c1/messages?after={after}&wait=30");
    let token = s.token("shop", "c1").await;
    let held: Vec<_> = (0..2)
        .map(|_| {
            let request = s.client.get(format!("{}{path}", s.base)).bearer_auth(&token);
            tokio::spawn(request.send())
        })
        .collect();
    // Once both are held, a third is refused, at once.
    let both = async {
        while !s.metric("botc_web_long_polls 2").await {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), both).await.expect("both long-polls are held");
    let third = tokio::time::timeout(std::time::Duration::from_secs(10), s.get(&path))
        .await
        .expect("a third long-poll is refused at once, not held");
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    assert!(third.text().await.expect("body").contains("long-polls"));
    // A message ends the held polls; then there is room again.
    s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "small"}"#).await;
    for h in held {
        assert_eq!(h.await.expect("task").expect("answers").status(), 200);
    }
    let r = s.get(&format!("/api/bots/shop/conversations/c1/messages?after={after}&wait=1")).await;
    assert_eq!(r.status(), 200);
}

/// A damaged data file (any 4 KiB of it overwritten, as a bad disk or a stray write would)
/// is a clear error from `Embedded::open` that says what to do, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_file_is_a_clear_error_never_a_panic() {
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    for conv in ["c1", "c2", "c3"] {
        s.greet(conv).await;
    }
    s.shut_down().await;
    let path = dir.path().join("botc.redb");
    let good = std::fs::read(&path).expect("read");
    let mut panics = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for at in (0..good.len()).step_by(4096) {
        let mut bad = good.clone();
        let end = (at + 4096).min(bad.len());
        for b in &mut bad[at..end] {
            *b ^= 0xa5;
        }
        std::fs::write(&path, &bad).expect("write");
        let opened = std::panic::catch_unwind(|| Embedded::open(dir.path(), 2, 100));
        match opened {
            Err(_) => panics.push(at),
            Ok(Ok(store)) => {
                store.close();
                *outcomes.entry("opened".to_string()).or_insert(0) += 1;
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                assert!(e.contains("botc.redb"), "the error names the file: {e}");
                *outcomes.entry(e).or_insert(0) += 1;
            }
        }
    }
    std::fs::write(&path, &good).expect("restore");
    assert!(panics.is_empty(), "opening panicked with 4 KiB damaged at offsets {panics:?}; outcomes: {outcomes:#?}");
}

/// history.sqlite deleted while botc runs: SQLite would go on writing the deleted file,
/// where nobody reads it again. botc notices, writes nothing there, and the history waits
/// in the store's queue (so a restart, which makes a new file, ships it), while the chat
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_deleted_under_a_running_server_is_noticed_and_nothing_is_lost() {
    use botc_serve::ports::HistorySink;
    let dir = data_dir();
    let s = start(Options::default(), 100, dir.path()).await;
    s.greet("c1").await;
    for f in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let refused = HistorySink::record(&*s.history, Vec::new()).await.expect_err("the deleted file is noticed");
    assert!(refused.to_string().contains("history.sqlite was deleted or replaced while botc runs"), "{refused}");
    // The chat goes on; its history waits in the store.
    assert_eq!(s.post("/api/bots/shop/conversations/c1/messages", r#"{"button": "large"}"#).await.status(), 202);
    s.expect_user("c1", "large").await;
    let waiting = HistoryQueue::unshipped(&*s.store, 1000).await.expect("queue");
    assert!(waiting.iter().any(|(_, r)| r.text == "large"), "the new message's history waits: {waiting:#?}");
}

/// A stop asked for while batches cannot be committed (a full disk under the worker) still
/// ends within seconds: the worker retrying its commit gives up the batch, which is still
/// on the bus and is done again at the next start, instead of holding the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_commits_fail_ends_within_seconds() {
    struct Full;
    impl botc_serve::ports::Committer for Full {
        fn commit(
            &self,
            _: Arc<botc_serve::ports::Batch>,
        ) -> botc_serve::ports::Fut<'_, Result<(), botc_serve::ports::StoreError>> {
            Box::pin(async { Err(botc_serve::ports::StoreError::Io("No space left on device (os error 28)".into())) })
        }
    }
    let dir = data_dir();
    let bots = vec![Bot::web("shop", "Shop", Arc::new(load(FLOW)))];
    let clock = Arc::new(botc_runtime::clock::SystemClock::default());
    let s = harness::start_with(bots, Options::default(), 100, dir.path(), clock, |mut p, _| {
        p.committer = Arc::new(Full);
        p
    })
    .await;
    let r = s.post("/api/bots/shop/conversations/c1/messages", r#"{"text": "hi"}"#).await;
    assert_eq!(r.status(), 202, "the event is on the bus");
    // The worker is now retrying the commit of its batch.
    let retrying = async {
        while !s.metric("botc_steps_total 1").await {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), retrying).await.expect("the worker stepped the event");
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(15), s.shut_down()).await;
    assert!(stopped.is_ok(), "botc did not stop within 15 s while its commits failed");
}
