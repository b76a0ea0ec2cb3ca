//! The distributed runtime as separate processes of the one binary: a Kafka-protocol broker
//! (librdkafka's mock cluster, in a `botc dev kafka-mock` process), the machine's Redis and
//! Postgres (a key prefix and a schema of this test's own), a gateway, workers and a
//! scheduler. What `botc serve` promises holds across processes: every acknowledged message
//! is answered exactly once, in order, also when a worker is killed with SIGKILL.

use crate::{Chat, banner_url, root};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes killed when the test ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        // The last started first: the roles before the broker and servers they use.
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_with(args: &[&str], stdin: Stdio) -> (Child, String) {
    start_env(args, stdin, &[])
}

/// Starts `botc ARGS` with `env` and reads its first line of output.
fn start_env(args: &[&str], stdin: Stdio, env: &[(String, String)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(stdin)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("botc starts");
    let line = crate::first_line(&mut child, &format!("botc {args:?}"));
    assert!(!line.is_empty(), "botc {args:?} printed nothing (see its errors above)");
    (child, line)
}

/// A schema of this test's own in the machine's Postgres, dropped at the end.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS {} CASCADE", self.0))
            .stderr(Stdio::null())
            .status();
    }
}

/// This test's keys in the machine's Redis, deleted at the end.
struct Prefix(String);

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("redis-cli --scan --pattern '{}*' | xargs -r redis-cli del >/dev/null", self.0))
            .status();
    }
}

fn psql(query: &str) -> String {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc", query]);
    let out = crate::output_within(&mut cmd, 60);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real Kafka-protocol broker to run against instead of the mock (scripts/test-real-kafka
/// sets it): its `host:port`.
fn real_broker() -> Option<String> {
    std::env::var("BOTC_TEST_KAFKA").ok().filter(|b| !b.is_empty())
}

/// A deployment's infrastructure for one test: the broker (the mock, whose stdin takes
/// faults, or a real one with a topic of the test's own), a Redis prefix and a Postgres
/// schema of the test's own, and a config naming them.
struct Deployment {
    config: String,
    flows: String,
    /// The mock broker's fault input (none with a real broker).
    broker: Option<std::process::ChildStdin>,
    /// Environment for the roles (credentials).
    env: Vec<(String, String)>,
    // Fields drop in order: the processes stop before their data is cleaned up.
    procs: Procs,
    schema: Schema,
    prefix: Prefix,
}

/// What a [`Deployment`] is made of, beyond the defaults.
struct Setup<'a> {
    partitions: usize,
    /// More lines for the config's [kafka] section.
    kafka: &'a str,
    /// The [redis] section's address lines.
    redis: String,
    /// Lines for a [limits] section.
    limits: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup { partitions: 2, kafka: "", redis: "url = \"redis://127.0.0.1:6379\"".into(), limits: "" }
    }
}

impl Deployment {
    /// `extra`: more lines for the config's [kafka] section.
    fn new(dir: &tempfile::TempDir, partitions: usize, extra: &str) -> Deployment {
        Deployment::with(dir, Setup { partitions, kafka: extra, ..Setup::default() })
    }

    fn with(dir: &tempfile::TempDir, setup: Setup) -> Deployment {
        let Setup { partitions, kafka: extra, redis, limits } = setup;
        std::fs::write(dir.path().join("echo.yaml"), crate::ECHO).expect("write flow");
        let tag = format!("{:016x}", fastrand::u64(..));
        let schema = Schema(format!("botc_e2e_{tag}"));
        let prefix = Prefix(format!("botc-e2e:{tag}:"));
        let mut procs = Procs(Vec::new());
        let (brokers, topic, broker) = match real_broker() {
            Some(b) => (b, format!("botc-e2e-{tag}"), None),
            None => {
                let (mut mock, brokers) =
                    start_with(&["dev", "kafka-mock", "--partitions", &partitions.to_string()], Stdio::piped());
                let stdin = mock.stdin.take().expect("stdin");
                procs.0.push(mock);
                (brokers.trim().to_string(), "botc-events".to_string(), Some(stdin))
            }
        };
        let config = dir.path().join("botc.toml");
        std::fs::write(
            &config,
            format!(
                "[limits]\n{limits}\n{UNLIMITED_CLIENTS}[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\npartitions = {partitions}\nreplication = 1\n{extra}\n[redis]\n{redis}\nprefix = \"{}\"\n\n[postgres]\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\nschema = \"{}\"\n",
                prefix.0,
                schema.0
            ),
        )
        .expect("write config");
        if broker.is_none() {
            let out = crate::botc(&["kafka", "init", "--config", &config.to_string_lossy()]);
            assert_eq!(out.status.code(), Some(0), "kafka init: {}", String::from_utf8_lossy(&out.stderr));
        }
        Deployment {
            config: config.to_string_lossy().into_owned(),
            flows: dir.path().to_string_lossy().into_owned(),
            broker,
            env: Vec::new(),
            procs,
            schema,
            prefix,
        }
    }

    fn role(&self, name: &str) -> (Child, String) {
        let args = [name, self.flows.as_str(), "--config", self.config.as_str(), "--listen", "127.0.0.1:0"];
        start_env(&args, Stdio::null(), &self.env)
    }

    /// Injects a fault into the mock broker; false with a real broker (which takes none).
    fn broker(&mut self, fault: &str) -> bool {
        use std::io::Write;
        match &mut self.broker {
            Some(stdin) => {
                writeln!(stdin, "{fault}").expect("the mock broker takes faults");
                true
            }
            None => false,
        }
    }
}

/// Worker processes and their HTTP addresses, killed when dropped.
struct Workers(std::collections::VecDeque<(Child, String)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (c, _) in self.0.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The sample `series` (name and labels) of the role whose HTTP is at `url` (`None` when it
/// does not answer or has no such series).
fn metric(url: &str, series: &str) -> Option<u64> {
    let metrics = Command::new("curl").args(["-s", "--max-time", "5", &format!("{url}/metrics")]).output().ok()?;
    String::from_utf8_lossy(&metrics.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
}

/// `botc_steps_total` of the role whose HTTP is at `url`.
fn steps_of(url: &str) -> Option<u64> {
    metric(url, "botc_steps_total")
}

/// The version of `bot` the role whose HTTP is at `url` serves.
fn version_of(url: &str, bot: &str) -> Option<u64> {
    metric(url, &format!("botc_flow_version{{bot=\"{bot}\"}}"))
}

/// The test's senders are one client sending as fast as they can: the per-client limits
/// are lifted (they have their own tests).
const UNLIMITED_CLIENTS: &str = "client_per_minute = 1000000000\nclient_burst = 1000000000\nconversation_per_minute = 1000000000\nconversation_burst = 1000000000\n";

/// Sends `total` messages over `chats` (each conversation's in order, the conversations at
/// once) and counts each conversation's acknowledged messages. Every one must be taken: a
/// refusal or no answer fails the test.
async fn send_all(base: &str, chats: &[Chat], total: usize) -> Vec<usize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let claimed = AtomicUsize::new(0);
    send_while(
        base,
        chats,
        Duration::ZERO,
        std::sync::Arc::new(move || claimed.fetch_add(1, Ordering::Relaxed) < total),
    )
    .await
}

/// Sends messages `m{c}-{i}` over `chats`, each conversation's in order and at most one per
/// `pace`, the conversations at once, for as long as `more()` says; counts each
/// conversation's acknowledged messages. Every one must be taken.
async fn send_while(
    base: &str,
    chats: &[Chat],
    pace: Duration,
    more: std::sync::Arc<dyn Fn() -> bool + Send + Sync>,
) -> Vec<usize> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let mut tasks = Vec::new();
    for (c, chat) in chats.iter().enumerate() {
        let (client, base, more, chat) = (client.clone(), base.to_string(), more.clone(), chat.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            while more() {
                match crate::say(&client, &base, &chat, &format!("m{c}-{acked}")).await {
                    Ok(r) if r.status() == 202 => acked += 1,
                    Ok(r) => panic!("the gateway refused a message: {}", r.status()),
                    Err(e) => panic!("the gateway did not answer: {e}"),
                }
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            acked
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("sender"));
    }
    out
}

/// Every acknowledged message (`acked[c]` in conversation `chats[c]`) is answered exactly
/// once and in order in the web transcript, and is in Postgres's history exactly once.
fn assert_all_answered(rt: &tokio::runtime::Runtime, d: &Deployment, base: &str, chats: &[Chat], acked: &[usize]) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(180);
    for (c, &n) in acked.iter().enumerate() {
        let last = if n > 1 { format!("echo m{c}-{}", n - 1) } else { "Say something".into() };
        let seen = loop {
            let seen = rt.block_on(crate::echo_transcript(&client, base, &chats[c]));
            if seen.iter().any(|m| m["text"] == last.as_str()) || Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        crate::assert_each_answered_once(&seen, c, n);
        // In order: each user message before its echo, and the messages in sending order.
        let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
        let users: Vec<&str> = texts.iter().copied().filter(|t| t.starts_with('m')).collect();
        let sent: Vec<String> = (0..n).map(|i| format!("m{c}-{i}")).collect();
        assert_eq!(users, sent, "c{c}: the user's messages in the order sent");
    }
    // History reaches Postgres, once per message, from the scheduler's shipper: each user
    // message, and each one's echo but each conversation's first.
    let want = acked.iter().map(|&n| 2 * n).sum::<usize>() - acked.iter().filter(|&&n| n > 0).count();
    let count_history = || {
        psql(&format!(
            "SELECT COUNT(*) FROM {}.history WHERE kind IN ('text', 'message') AND text LIKE '%m%-%'",
            d.schema.0
        ))
        .trim()
        .parse::<usize>()
        .unwrap_or(0)
    };
    let mut got = count_history();
    while got < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = count_history();
    }
    assert_eq!(got, want, "history rows");
    let dupes = psql(&format!(
        "SELECT COUNT(*) FROM (SELECT id FROM {}.history GROUP BY id HAVING COUNT(*) > 1) d",
        d.schema.0
    ));
    assert_eq!(dupes.trim(), "0", "a history record is there twice");
    // `botc history` reads it from Postgres.
    let out = crate::botc(&[
        "history",
        "--config",
        &d.config,
        "--bot",
        "echo",
        "--conversation",
        &chats[0].id,
        "--limit",
        "100000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let last = format!("  bot    echo m0-{}\n", acked[0].saturating_sub(1));
    assert!(crate::stdout(&out).contains(&last), "{}", crate::stdout(&out));
}

/// Five workers killed with SIGKILL, one after another, while 100,000 messages flow through
/// three (each killed one replaced at once, so two or more always run): every acknowledged
/// message is answered exactly once, in order, and is in Postgres's history once. Each kill
/// comes once a worker has stepped another 3,000 events, and takes that one; the partitions it held wait for
/// its leases to expire (2 s here), then the others take them over.
#[test]
fn five_worker_kills_during_100000_messages_lose_none_and_repeat_none() {
    const TOTAL: usize = 100_000;
    const CHATS: usize = 64;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = Deployment::with(&dir, Setup { partitions: 8, limits: "lease_seconds = 2", ..Setup::default() });
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (scheduler, _) = d.role("scheduler");
    d.procs.0.push(scheduler);
    let worker = |d: &Deployment| {
        let (child, banner) = d.role("worker");
        let url = banner_url(&banner).expect("worker url");
        (child, url)
    };
    // The live workers (killed with the test if it fails) and their HTTP addresses.
    let mut workers = Workers((0..3).map(|_| worker(&d)).collect());

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let chats = rt.block_on(crate::start_chats(&crate::client(), &base, CHATS));
    let started = Instant::now();
    let (acked, mut alive, kills) = std::thread::scope(|scope| {
        let d = &d;
        let killer = scope.spawn(move || {
            // Killed workers are reaped here; the live ones go back to the test's processes.
            let mut kills = Vec::new();
            for round in 1..=5 {
                // The victim: the first worker to step another 3,000 events from now (one
                // that holds partitions and is busy with them).
                let from: Vec<u64> = workers.0.iter().map(|(_, url)| steps_of(url).unwrap_or(0)).collect();
                let deadline = Instant::now() + Duration::from_secs(120);
                let victim = loop {
                    let busy =
                        workers.0.iter().zip(&from).position(|((_, url), f)| steps_of(url).unwrap_or(0) >= f + 3_000);
                    if let Some(i) = busy {
                        break i;
                    }
                    assert!(Instant::now() < deadline, "kill {round}: no worker stepped 3,000 events in 2 minutes");
                    std::thread::sleep(Duration::from_millis(20));
                };
                let (mut child, _) = workers.0.remove(victim).expect("the victim");
                let _ = child.kill();
                let _ = child.wait();
                kills.push(started.elapsed());
                workers.0.push_back(worker(d));
            }
            (workers, kills)
        });
        let acked = rt.block_on(send_all(&base, &chats, TOTAL));
        let (alive, kills) = killer.join().expect("killer");
        (acked, alive, kills)
    });
    d.procs.0.extend(std::mem::take(&mut alive.0).into_iter().map(|(c, _)| c));
    eprintln!("acknowledged {} in {:?}; killed at {kills:?}", acked.iter().sum::<usize>(), started.elapsed());
    assert_eq!(acked.iter().sum::<usize>(), TOTAL, "every message was acknowledged");
    assert_eq!(kills.len(), 5);
    assert_all_answered(&rt, &d, &base, &chats, &acked);
    eprintln!("all answered after {:?}", started.elapsed());
}

/// A Redis Cluster master killed with SIGKILL while messages flow: its replica takes over,
/// and every acknowledged message is answered exactly once, in order (with `replicas = 1`
/// each batch waits for a replica before its position moves, so the promoted replica has
/// everything a committed batch wrote).
#[test]
fn a_redis_cluster_master_killed_mid_load_fails_over_and_loses_nothing() {
    const TOTAL: usize = 4_000;
    const CHATS: usize = 8;
    let cluster = crate::redis_cluster::start();
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| format!("\"{n}\"")).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = format!("cluster = [{}]\nreplicas = 1", nodes.join(", "));
    let mut d = Deployment::with(&dir, Setup { partitions: 4, redis, limits: "lease_seconds = 2", ..Setup::default() });
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (scheduler, _) = d.role("scheduler");
    d.procs.0.push(scheduler);
    let (worker, worker_banner) = d.role("worker");
    d.procs.0.push(worker);
    let worker_url = banner_url(&worker_banner).expect("worker url");
    let (worker, _) = d.role("worker");
    d.procs.0.push(worker);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let chats = rt.block_on(crate::start_chats(&crate::client(), &base, CHATS));
    let session = format!("{}{{c:echo/web/{}}}:s", d.prefix.0, chats[0].id);
    let acked = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while steps_of(&worker_url).unwrap_or(0) < 200 {
                assert!(Instant::now() < deadline, "the worker stepped nothing");
                std::thread::sleep(Duration::from_millis(20));
            }
            let master = cluster.master_of(&session);
            cluster.kill(master);
            cluster.wait_ok_without(master);
        });
        let acked = rt.block_on(send_all(&base, &chats, TOTAL));
        killer.join().expect("killer");
        acked
    });
    assert_eq!(acked.iter().sum::<usize>(), TOTAL, "every message was acknowledged");
    assert_all_answered(&rt, &d, &base, &chats, &acked);
}

async fn post(client: &reqwest::Client, base: &str, chat: &Chat, text: &str) -> (u16, Option<String>) {
    let r = crate::say(client, base, chat, text).await.expect("the gateway answers");
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (r.status().as_u16(), retry)
}

/// While the brokers are down the gateway answers 503 with Retry-After within its publish
/// timeout, never a 2xx for an event it could not store; when they are back, messages are
/// taken again and every acknowledged one is answered once.
#[test]
fn while_the_broker_is_down_the_gateway_answers_503_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = Deployment::new(&dir, 2, "publish_timeout_ms = 1000");
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (worker, _) = d.role("worker");
    d.procs.0.push(worker);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let c = rt.block_on(crate::start_chat(&client, &base));
    assert_eq!(rt.block_on(post(&client, &base, &c, "before")).0, 202);

    if !d.broker("down") {
        eprintln!("a real broker takes no faults: the broker-down check runs on the mock only");
        return;
    }
    let sent = Instant::now();
    let (status, retry) = rt.block_on(post(&client, &base, &c, "during"));
    assert_eq!(status, 503, "a message the brokers could not take was acknowledged");
    assert_eq!(retry.as_deref(), Some("1"), "the 503 says when to retry");
    assert!(sent.elapsed() < Duration::from_secs(5), "the 503 took {:?}", sent.elapsed());

    d.broker("up");
    // The client retries, as platforms do, until the brokers take it again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = rt.block_on(post(&client, &base, &c, "after"));
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "only 503 while the brokers come back");
        assert!(Instant::now() < deadline, "the gateway never took messages again");
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = loop {
        let seen = rt.block_on(crate::echo_transcript(&client, &base, &c));
        if seen.len() >= 5 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(
        texts,
        ["before", "Say something", "after", "echo after", "Say something"],
        "the refused message was not stored; the others were answered once"
    );
}

/// A Redis server of the test's own, on a free port, that the test may stop and continue.
fn own_redis() -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// While Redis is stalled (SIGSTOP) for 10 s the gateway keeps acknowledging web messages
/// at once (they wait on Kafka); when Redis continues, the worker catches up and answers
/// every one, once, in order.
#[test]
fn while_redis_is_stalled_the_gateway_keeps_acknowledging_and_the_backlog_drains() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (redis, port) = own_redis();
    let redis_pid = redis.id().to_string();
    let mut d =
        Deployment::with(&dir, Setup { redis: format!("url = \"redis://127.0.0.1:{port}\""), ..Setup::default() });
    d.procs.0.push(redis);
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (worker, _) = d.role("worker");
    d.procs.0.push(worker);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let c = rt.block_on(crate::start_chat(&client, &base));
    assert_eq!(rt.block_on(post(&client, &base, &c, "m0")).0, 202);

    let signal = |sig: &str| {
        assert!(Command::new("kill").args([sig, &redis_pid]).status().expect("kill runs").success());
    };
    signal("-STOP");
    let stalled = Instant::now();
    let mut sent = 1;
    while stalled.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        let (status, _) = rt.block_on(post(&client, &base, &c, &format!("m{sent}")));
        assert_eq!(status, 202, "message {sent} was refused while Redis was stalled");
        assert!(started.elapsed() < Duration::from_secs(1), "message {sent} took {:?}", started.elapsed());
        sent += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    signal("-CONT");

    let deadline = Instant::now() + Duration::from_secs(60);
    let last = format!("echo m{}", sent - 1);
    let seen = loop {
        let seen = rt.block_on(crate::echo_transcript(&client, &base, &c));
        if seen.iter().any(|m| m["text"] == last.as_str()) || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let users: Vec<&str> = seen.iter().filter(|m| m["from"] == "user").filter_map(|m| m["text"].as_str()).collect();
    let sent_texts: Vec<String> = (0..sent).map(|i| format!("m{i}")).collect();
    assert_eq!(users, sent_texts, "every acknowledged message, once, in order");
    let echoes = seen.iter().filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("echo "))).count();
    assert_eq!(echoes, sent - 1, "each message after the first echoed once: {seen:#?}");
}

/// A TCP proxy to the machine's Postgres that the test can cut (every connection closed,
/// new ones refused) and restore: an outage of the database as the roles see it, in user
/// space.
struct Cuttable {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Cuttable {
    fn to(upstream: u16) -> Cuttable {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let mut list = open2.lock().expect("open");
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                for (mut from, mut to) in
                    [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Cuttable { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().expect("open").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// While Postgres is unreachable for 30 s conversations go on, and their history waits in
/// Redis; once it is back, the history is complete, each record once.
#[test]
fn while_postgres_is_down_conversations_go_on_and_history_arrives_complete_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = Cuttable::to(5432);
    let mut d = Deployment::new(&dir, 2, "");
    let config = std::fs::read_to_string(&d.config).expect("config");
    let config = config.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    std::fs::write(&d.config, config).expect("config");
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (worker, _) = d.role("worker");
    d.procs.0.push(worker);
    let (scheduler, _) = d.role("scheduler");
    d.procs.0.push(scheduler);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let c = rt.block_on(crate::start_chat(&client, &base));
    let rows = |schema: &str| {
        psql(&format!("SELECT COUNT(*) FROM {schema}.history WHERE direction = 'in'"))
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for i in 0..3 {
        assert_eq!(rt.block_on(post(&client, &base, &c, &format!("m{i}"))).0, 202);
    }
    wait_for("the first messages' history", &|| rows(&d.schema.0) == 3);

    // A 30 s outage, a message every 3 s through it: the conversation goes on without
    // Postgres (each message is answered while it is down).
    proxy.cut();
    let down = Instant::now();
    let transcript = || rt.block_on(crate::echo_transcript(&client, &base, &c));
    for i in 3..13 {
        assert_eq!(rt.block_on(post(&client, &base, &c, &format!("m{i}"))).0, 202, "m{i} while Postgres is down");
        let echo = format!("echo m{i}");
        wait_for("the answers while Postgres is down", &|| transcript().iter().any(|m| m["text"] == echo.as_str()));
        std::thread::sleep((down + Duration::from_secs(3 * (i - 2))).saturating_duration_since(Instant::now()));
    }
    assert!(down.elapsed() >= Duration::from_secs(30));
    assert_eq!(rows(&d.schema.0), 3, "history reached a database that was down");

    proxy.restore();
    wait_for("the history of the outage", &|| rows(&d.schema.0) == 13);
    let dupes = psql(&format!(
        "SELECT COUNT(*) FROM (SELECT id FROM {}.history GROUP BY id HAVING COUNT(*) > 1) d",
        d.schema.0
    ));
    assert_eq!(dupes.trim(), "0", "a history record is there twice");
    let users =
        psql(&format!("SELECT string_agg(text, ',' ORDER BY seq) FROM {}.history WHERE direction = 'in'", d.schema.0));
    let sent: Vec<String> = (0..13).map(|i| format!("m{i}")).collect();
    assert_eq!(users.trim(), sent.join(","), "in order");

    // `botc history` reads from a read replica when one is configured (here the machine's
    // Postgres, while the primary the roles use is cut again), and says what it cannot reach.
    proxy.cut();
    let out = crate::botc(&["history", "--config", &d.config, "--bot", "echo", "--conversation", &c.id]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to postgres"), "{out:?}");
    let config = std::fs::read_to_string(&d.config).expect("config");
    let with_replica = config.replace("[postgres]\n", "[postgres]\nread_url_env = \"BOTC_TEST_READ_URL\"\n");
    std::fs::write(&d.config, with_replica).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["history", "--config", &d.config, "--bot", "echo", "--conversation", &c.id])
        .env("BOTC_TEST_READ_URL", "postgres://postgres@127.0.0.1:5432/test")
        .output()
        .expect("botc history");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(crate::stdout(&out).contains("  bot    echo m12\n"), "{}", crate::stdout(&out));
}

/// `botc doctor` says what a deployment's config reaches, and what is wrong, changing
/// nothing: the topic, Redis and its mode, Postgres and its schema.
#[test]
fn doctor_checks_every_part_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = Deployment::new(&dir, 2, "");
    let out = crate::botc(&["doctor", "--config", &d.config]);
    let text = crate::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in
        ["ok    kafka at", "has 2 partitions", "ok    redis (one server)", "is created when a role first starts"]
    {
        assert!(text.contains(want), "wanted `{want}` in:\n{text}");
    }
    assert_eq!(
        psql(&format!("SELECT to_regclass('{}.history')", d.schema.0)).trim(),
        "",
        "the doctor changed postgres"
    );
    // The topic's partitions disagree with the config.
    let config = std::fs::read_to_string(&d.config).expect("config").replace("partitions = 2", "partitions = 3");
    std::fs::write(&d.config, config).expect("config");
    let out = crate::botc(&["doctor", "--config", &d.config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::stdout(&out).contains("has 2 partitions but kafka.partitions says 3"), "{}", crate::stdout(&out));
    // The brokers are gone.
    if !d.broker("down") {
        return;
    }
    let out = crate::botc(&["doctor", "--config", &d.config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::stdout(&out).contains("FAIL  cannot reach the kafka brokers"), "{}", crate::stdout(&out));
}

const TG_TOKEN: &str = "4242:Dispatch-Test-Token";
const TG_SECRET: &str = "Dispatch_Test_Secret";

/// A dispatcher killed with SIGKILL while it delivers: the other dispatcher takes the bot's
/// replies over once the dead one's lease expires; no reply is lost, and a reply is sent
/// twice only if it was in flight at the kill (at most the dispatcher's sends in flight).
#[test]
fn a_dispatcher_killed_mid_send_loses_no_reply_and_repeats_only_what_was_in_flight() {
    use botc_serve::fake::{FakePlatform, Tokens};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let fake =
        rt.block_on(FakePlatform::start(Tokens { telegram: TG_TOKEN.into(), ..Tokens::default() })).expect("fake");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = Deployment::new(&dir, 2, "");
    let mut config = std::fs::read_to_string(&d.config).expect("config");
    config.push_str(&format!(
        "\n[platforms]\ntelegram_api = \"{}\"\n\n[[bots]]\nid = \"tg\"\nflow = \"echo.yaml\"\nplatform = \"telegram\"\ntoken_env = \"TG_TOKEN\"\nwebhook_secret_env = \"TG_SECRET\"\nplan = \"premium\"\nmessages_per_second = 1000\nconversation_messages_per_second = 1000\n",
        fake.base
    ));
    std::fs::write(&d.config, config).expect("config");
    d.env = vec![("TG_TOKEN".into(), TG_TOKEN.into()), ("TG_SECRET".into(), TG_SECRET.into())];
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (worker, _) = d.role("worker");
    d.procs.0.push(worker);
    let (a, a_banner) = d.role("dispatcher");
    let a_pid = a.id().to_string();
    d.procs.0.push(a);
    let (b, b_banner) = d.role("dispatcher");
    let b_pid = b.id().to_string();
    d.procs.0.push(b);
    let (a_url, b_url) = (banner_url(&a_banner).expect("url"), banner_url(&b_banner).expect("url"));

    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    const CHATS: usize = 10;
    let send = |chat: usize, i: usize| {
        let update = format!(
            "{{\"update_id\":{},\"message\":{{\"message_id\":{i},\"from\":{{\"id\":{chat},\"first_name\":\"U\"}},\"chat\":{{\"id\":{chat},\"type\":\"private\"}},\"text\":\"m{chat}-{i}\"}}}}",
            chat * 1_000_000 + i
        );
        let (client, url) = (client.clone(), format!("{base}/webhooks/telegram/tg"));
        async move {
            let r = client.post(url).header("x-telegram-bot-api-secret-token", TG_SECRET).body(update).send().await;
            r.expect("the gateway answers").status().as_u16()
        }
    };
    let delivered_by = |url: &str| {
        rt.block_on(async {
            let text = client.get(format!("{url}/metrics")).send().await.expect("metrics").text().await.expect("text");
            text.lines().any(|l| l.starts_with("botc_replies_delivered_total{") && !l.trim_end().ends_with(" 0"))
        })
    };
    // Ten messages per chat; the dispatcher delivering is killed after the fourth round.
    let mut killed = None;
    for i in 0..10 {
        for chat in 1..=CHATS {
            assert_eq!(rt.block_on(send(chat, i)), 200, "the webhook was not taken");
        }
        if i == 3 {
            let deadline = Instant::now() + Duration::from_secs(30);
            let holder = loop {
                if delivered_by(&a_url) {
                    break a_pid.clone();
                }
                if delivered_by(&b_url) {
                    break b_pid.clone();
                }
                assert!(Instant::now() < deadline, "no dispatcher delivered anything");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(Command::new("kill").args(["-KILL", &holder]).status().expect("kill").success());
            killed = Some(holder);
        }
    }
    assert!(killed.is_some());
    // Every chat gets "Say something" for its first message and an echo for each later one.
    let expected: Vec<(String, String)> = (1..=CHATS)
        .flat_map(|chat| {
            (1..10)
                .map(move |i| (chat.to_string(), format!("echo m{chat}-{i}")))
                .chain([(chat.to_string(), "Say something".to_string())])
        })
        .collect();
    let sent = |r: &botc_serve::fake::Received| {
        (r.body["chat_id"].to_string().trim_matches('"').to_string(), r.body["text"].as_str().unwrap_or("").to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<(String, String)> =
            fake.received().iter().filter(|r| r.path.ends_with("/sendMessage")).map(sent).collect();
        if expected.iter().all(|e| got.contains(e)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replies never delivered: {:?}",
            expected.iter().filter(|e| !got.contains(e)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: Vec<(String, String)> =
        fake.received().iter().filter(|r| r.path.ends_with("/sendMessage")).map(sent).collect();
    let echoes: Vec<&(String, String)> = got.iter().filter(|(_, t)| t.starts_with("echo ")).collect();
    let mut unique = echoes.clone();
    unique.sort();
    unique.dedup();
    let repeated = echoes.len() - unique.len();
    eprintln!("echo replies: {} sent, {} distinct, {repeated} sent twice", echoes.len(), unique.len());
    assert_eq!(unique.len(), CHATS * 9, "every echo delivered");
    // The dispatcher sends at most 64 replies at once (dispatch.rs IN_FLIGHT).
    assert!(repeated <= 64, "{repeated} replies sent twice: more than were in flight");
}

/// A distributed role reads and checks its whole config before it connects to anything: each
/// mistake is refused with the file, the line where it can say, and the fix.
#[test]
fn a_role_refuses_a_bad_config_before_connecting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("[redis]\nurl = \"redis://127.0.0.1:1\"\n", "need a [kafka] section"),
        ("[kafka]\nbrokers = \"127.0.0.1:1\"\n", "need a [redis] section"),
        (
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[redis]\nurl = \"redis://127.0.0.1:1\"\ncluster = [\"redis://127.0.0.1:2\"]\n",
            "give exactly one of redis.url, redis.url_env or redis.cluster",
        ),
        (
            "[kafka]\nbrokers = \"127.0.0.1:1\"\npartitions = 0\n[redis]\nurl = \"redis://127.0.0.1:1\"\n",
            ":3: kafka.partitions must be between 1 and 1024",
        ),
        (
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[redis]\nurl_env = \"BOTC_TEST_UNSET_REDIS_URL\"\n[postgres]\nurl = \"postgres://x@127.0.0.1:1/x\"\n",
            "environment variable BOTC_TEST_UNSET_REDIS_URL (redis.url_env) is not set",
        ),
        ("[kafka]\nbrokers = \"127.0.0.1:1\"\nbrokerz = 1\n", ":3: unknown field `brokerz`"),
        (
            "[limits]\nlease_seconds = 1\n[kafka]\nbrokers = \"127.0.0.1:1\"\n[redis]\nurl = \"redis://127.0.0.1:1\"\n",
            ":2: limits.lease_seconds must be between 2 and 300",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let started = Instant::now();
        let out = crate::botc(&["worker", "flows/examples", "--config", &path.to_string_lossy()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(want), "case {i}: wanted `{want}` in: {err}");
        assert!(err.contains(&*path.to_string_lossy()), "case {i}: the file is named: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "case {i}: refused only after {:?}", started.elapsed());
    }
}

/// `botc deploy` from a git repository while messages flow through a gateway and two
/// workers that follow `production`: every worker serves the new version within seconds of
/// the deploy, every acknowledged message is answered exactly once (by the version the
/// conversation was on), and each conversation, once moved, stays on the new version: the
/// waiting conversations move as the plan said (all of them: the question is unchanged).
#[test]
fn a_deploy_under_load_reaches_every_worker_within_seconds_and_loses_nothing() {
    use crate::registry::{ECHO_2, botc_in, commit, git};
    use std::sync::atomic::{AtomicBool, Ordering};
    const CHATS: usize = 24;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = Deployment::new(&dir, 4, "");
    let config = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, format!("environment = \"production\"\n{config}")).expect("config");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "The echo bot"]);
    // The roles start on the flow files: the first one records them as production's v1.
    let (gateway, banner) = d.role("gateway");
    d.procs.0.push(gateway);
    let base = banner_url(&banner).expect("gateway url");
    let (scheduler, _) = d.role("scheduler");
    d.procs.0.push(scheduler);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (child, banner) = d.role("worker");
        d.procs.0.push(child);
        workers.push(banner_url(&banner).expect("worker url"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = crate::client();
    let chats = rt.block_on(crate::start_chats(&client, &base, CHATS));
    // Conversations that start after the deploy: 16, at least one on each of the 4 partitions.
    let mut probes: Vec<Chat> = Vec::new();
    while probes.len() < 16 {
        let chat = rt.block_on(crate::start_chat(&client, &base));
        let partition = |c: &Chat| botc_serve::partition_of(&format!("echo/web/{}", c.id), 4);
        let covered: std::collections::BTreeSet<usize> = probes.iter().map(partition).collect();
        if !covered.contains(&partition(&chat)) || 16 - probes.len() > 4 - covered.len() {
            probes.push(chat);
        }
    }
    let answered = |chat: &Chat, text: &str| {
        rt.block_on(crate::echo_transcript(&client, &base, chat)).iter().any(|m| m["text"] == text)
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    /// Stops the load however the scope ends: a failed check must not leave it running (the
    /// scope waits for it).
    struct StopOnDrop(std::sync::Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let acked = std::thread::scope(|scope| {
        let _stop = StopOnDrop(stop.clone());
        // At most 20 messages a second per conversation, so a debug build's workers keep up.
        let going = stop.clone();
        let more = std::sync::Arc::new(move || !going.load(Ordering::Relaxed));
        let load = scope.spawn(|| rt.block_on(send_while(&base, &chats, Duration::from_millis(50), more)));
        // Mid-load: every conversation has been answered by the old version.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !chats.iter().enumerate().all(|(c, chat)| answered(chat, &format!("echo m{c}-1"))) {
            assert!(
                Instant::now() < deadline,
                "the load did not get going: the first conversation has {:?}",
                rt.block_on(crate::echo_transcript(&client, &base, &chats[0]))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("load running; deploying");
        commit(dir.path(), "echo.yaml", ECHO_2, "A new answer");
        let out = botc_in(dir.path(), &["deploy", &d.flows, "--config", &d.config]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(" move on, 0 start over"), "every waiting conversation moves: {said}");
        let deployed = Instant::now();
        // Every worker follows within seconds: each says it serves v2 ...
        for url in &workers {
            while version_of(url, "echo") != Some(2) {
                assert!(deployed.elapsed() < Duration::from_secs(30), "{url} still serves v1 30 s after the deploy");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        eprintln!("every worker serves v2 {:?} after the deploy", deployed.elapsed());
        // ... and does: from now on, new conversations on every partition get the new answer.
        for (p, probe) in probes.iter().enumerate() {
            for text in ["hi", "ping"] {
                assert_eq!(rt.block_on(post(&client, &base, probe, text)).0, 202);
            }
            while !answered(probe, "echo2 ping") {
                assert!(!answered(probe, "echo ping"), "probe {p}: answered by the old version after the deploy");
                assert!(deployed.elapsed() < Duration::from_secs(30), "probe {p}: no answer within 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        eprintln!("every partition served v2 {:?} after the deploy", deployed.elapsed());
        // Each conversation answered by the new version, then the load stops.
        while !chats.iter().all(|chat| {
            rt.block_on(crate::echo_transcript(&client, &base, chat))
                .iter()
                .any(|m| m["text"].as_str().is_some_and(|t| t.starts_with("echo2 ")))
        }) {
            assert!(deployed.elapsed() < Duration::from_secs(60), "a conversation was not moved within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("every conversation moved {:?} after the deploy; stopping the load", deployed.elapsed());
        stop.store(true, Ordering::Relaxed);
        load.join().expect("load")
    });
    // Nothing lost or repeated; a conversation never goes back to the old version.
    for (c, &n) in acked.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let last = format!("m{c}-{}", n - 1);
        let seen = loop {
            let seen = rt.block_on(crate::echo_transcript(&client, &base, &chats[c]));
            if seen.iter().any(|m| m["text"].as_str().is_some_and(|t| t.ends_with(&format!(" {last}")))) {
                break seen;
            }
            assert!(Instant::now() < deadline, "c{c}: {last} never answered");
            std::thread::sleep(Duration::from_millis(50));
        };
        let echoes: Vec<&str> = seen
            .iter()
            .filter(|m| m["from"] == "bot")
            .filter_map(|m| m["text"].as_str())
            .filter(|t| t.starts_with("echo"))
            .collect();
        let want: Vec<String> = (1..n).map(|i| format!("m{c}-{i}")).collect();
        let got: Vec<&str> = echoes.iter().map(|t| t.split_once(' ').map_or("", |(_, m)| m)).collect();
        assert_eq!(got, want, "c{c}: each message answered once, in order");
        let switch = echoes.iter().position(|t| t.starts_with("echo2 ")).expect("moved");
        assert!(echoes[switch..].iter().all(|t| t.starts_with("echo2 ")), "c{c} went back: {echoes:?}");
    }
    // The registry in Postgres: the versions with their commits, and a rollback the workers
    // follow as they followed the deploy.
    let versions = botc_in(dir.path(), &["versions", "echo", "--config", &d.config]);
    let listed = String::from_utf8_lossy(&versions.stdout).into_owned();
    // v1 came from the roles' first start (flow files, no commit); v2 from the deploy.
    let line = |v: &str| listed.lines().find(|l| l.trim_start().starts_with(v)).unwrap_or_default().to_string();
    assert!(line("v2").contains("Ada Lovelace") && line("v2").ends_with("A new answer  <- production"), "{listed}");
    assert!(line("v1").contains(" - "), "{listed}");
    let back = botc_in(dir.path(), &["rollback", "echo", "--config", &d.config]);
    let said = String::from_utf8_lossy(&back.stdout).into_owned();
    assert_eq!(back.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&back.stderr));
    // The load's conversations and the probes, all waiting where v1 has the same question.
    let waiting = CHATS + 16;
    assert!(said.contains(&format!("{waiting} waiting conversation(s): {waiting} move on, 0 start over")), "{said}");
    let rolled_back = Instant::now();
    for url in &workers {
        while version_of(url, "echo") != Some(1) {
            assert!(rolled_back.elapsed() < Duration::from_secs(30), "{url} still serves v2 30 s after the rollback");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let after_rollback = rt.block_on(crate::start_chat(&client, &base));
    for text in ["hi", "ping"] {
        assert_eq!(rt.block_on(post(&client, &base, &after_rollback, text)).0, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answered(&after_rollback, "echo ping") {
        assert!(Instant::now() < deadline, "a new conversation was not answered by v1 within 30 s of the rollback");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deploys = botc_in(dir.path(), &["deploys", "--config", &d.config]);
    let history = String::from_utf8_lossy(&deploys.stdout).into_owned();
    let actions: Vec<&str> = history.lines().filter_map(|l| l.split_whitespace().nth(3)).collect();
    assert_eq!(actions, ["rollback", "deploy", "deploy"], "{history}");
}
