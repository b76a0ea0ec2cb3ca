//! End-to-end tests of the `botc` binary: every fixture in `flows/`, exit codes, output
//! formats and hostile input. One test binary, one module per concern.

// These tests drive real botc processes, which run on the real clock (kill -9 mid-load, a
// server's lifetime): they read it too. Library tests inject a ManualClock instead.
#![allow(clippy::disallowed_methods)]

mod bad_input;
mod browser;
mod cli;
mod compile;
mod conversation;
mod deploy;
#[cfg(feature = "distributed")]
mod distributed;
mod durability;
mod fixtures;
mod forms;
mod platforms;
#[cfg(feature = "distributed")]
#[allow(dead_code)]
#[path = "../dist/tests/support/cluster.rs"]
mod redis_cluster;
pub mod registry;
mod schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (this file lives in `tests/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_path_buf()
}

/// Runs the real `botc` binary from the repository root.
pub fn botc(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_botc"));
    cmd.args(args).current_dir(root()).env("NO_COLOR", "1");
    output_within(&mut cmd, 120)
}

/// Runs `cmd` to its end, as `Command::output` does, but kills it and fails the test if it
/// takes more than `seconds`: a command that hangs fails the test instead of hanging it.
pub fn output_within(cmd: &mut Command, seconds: u64) -> Output {
    use std::process::Stdio;
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("it starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(seconds)) {
        Ok(out) => out.expect("its output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {seconds} s and was killed");
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Flow files (not conversation tests) under a directory of the repository, sorted, as paths
/// relative to the root.
pub fn flow_files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("fixture dir exists") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "flow"))
                && !p.to_string_lossy().ends_with(".test.yaml")
            {
                out.push(p.strip_prefix(root()).expect("under root").to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A running `botc serve`, started from the repository root, and the banner line it printed
/// once it listens. Stderr is kept when `capture_stderr` (for log checks), else discarded.
/// Starts `botc serve` with `args` on a fresh data directory (returned, so it lives as long
/// as the test needs it) and reads its banner.
pub fn start_serve(args: &[&str], capture_stderr: bool) -> (std::process::Child, String, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let (server, banner) = start_serve_in(args, data.path(), capture_stderr);
    (server, banner, data)
}

/// A `botc.toml` that lifts the web chat's per-client limits, for tests that send as fast as
/// they can from one address (a load generator looks like one greedy client).
pub fn unlimited_config(dir: &std::path::Path) -> String {
    let path = dir.join("unlimited.toml");
    let limits = "[limits]\nclient_per_minute = 1000000000\nclient_burst = 1000000000\nconversation_per_minute = 1000000000\nconversation_burst = 1000000000\n";
    std::fs::write(&path, limits).expect("write the config");
    path.to_string_lossy().into_owned()
}

/// Starts `botc serve` with `args` on the data directory `data` and reads its banner.
pub fn start_serve_in(args: &[&str], data: &std::path::Path, capture_stderr: bool) -> (std::process::Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_botc"))
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(if capture_stderr { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .spawn()
        .expect("botc serve starts");
    let banner = first_line(&mut server, "botc serve");
    (server, banner)
}

/// An HTTP client for the tests: every request ends within 30 s, answered or not, so a
/// server that stops answering fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("client")
}

/// The first line `child` prints on stdout, waiting at most 60 s for it: a process that
/// hangs before its banner is killed and fails the test instead of hanging it.
pub fn first_line(child: &mut std::process::Child, what: &str) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} printed nothing within 60 s and was killed (see its errors above)");
        }
    }
}

/// Every line `child` writes to stderr (which must be piped), as it writes them.
pub struct Log {
    lines: std::sync::mpsc::Receiver<String>,
    /// What has been read so far.
    pub seen: String,
}

impl Log {
    pub fn of(child: &mut std::process::Child) -> Log {
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Log { lines, seen: String::new() }
    }

    /// Waits (at most `seconds`) for the next line containing `text` not read before.
    pub fn wait_for(&mut self, text: &str, seconds: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(text) {
                        return;
                    }
                }
                Err(e) => panic!("no log line says {text:?} within {seconds} s ({e}):\n{}", self.seen),
            }
        }
    }

    /// Everything written until the process closed its stderr.
    pub fn rest(mut self) -> String {
        self.seen.extend(self.lines.iter().map(|l| l + "\n"));
        self.seen
    }
}

/// Waits (at most `seconds`) for `child` to exit, on a thread of its own: no polling.
pub fn exits_within(child: std::process::Child, seconds: u64) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(std::time::Duration::from_secs(seconds)).is_ok()
}

/// The URL in `botc serve`'s banner, without a trailing slash.
pub fn banner_url(banner: &str) -> Option<String> {
    banner.split_whitespace().find(|w| w.starts_with("http://")).map(|u| u.trim_end_matches('/').to_string())
}

/// The echo bot the durability tests talk to: it answers every message, `ask` into `t`, then
/// `say` it back.
pub const ECHO: &str = "flow: echo\nstart: listen\nvars:\n  t: text\nnodes:\n  listen:\n    ask: \"Say something\"\n    into: t\n    next: answer\n  answer:\n    say: \"echo {{ t }}\"\n    next: listen\n";

/// A web conversation as the server issued it: its id, and the token that reads and writes it.
#[derive(Clone, Debug)]
pub struct Chat {
    pub bot: String,
    pub id: String,
    pub token: String,
}

/// Starts a conversation of the echo bot (`POST /api/bots/echo/conversations`).
pub async fn start_chat(client: &reqwest::Client, base: &str) -> Chat {
    start_chat_of(client, base, "echo").await
}

/// Starts a conversation of `bot`.
pub async fn start_chat_of(client: &reqwest::Client, base: &str, bot: &str) -> Chat {
    let r = client.post(format!("{base}/api/bots/{bot}/conversations")).send().await.expect("the gateway answers");
    assert_eq!(r.status(), 201, "a conversation is issued");
    let v: serde_json::Value = r.json().await.expect("json");
    let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no `{k}` in {v}")).to_string();
    Chat { bot: bot.into(), id: field("conversation"), token: field("token") }
}

/// `chat`'s messages URL.
pub fn messages_url(base: &str, chat: &Chat) -> String {
    format!("{base}/api/bots/{}/conversations/{}/messages", chat.bot, chat.id)
}

/// `chat`'s transcript, read with its token; `query` as the API takes it (`after=0&wait=1`).
pub async fn transcript(client: &reqwest::Client, base: &str, chat: &Chat, query: &str) -> Vec<serde_json::Value> {
    let url = format!("{}?{query}", messages_url(base, chat));
    let v: serde_json::Value =
        client.get(url).bearer_auth(&chat.token).send().await.expect("get").json().await.expect("json");
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// `n` conversations of the echo bot.
pub async fn start_chats(client: &reqwest::Client, base: &str, n: usize) -> Vec<Chat> {
    let mut chats = Vec::with_capacity(n);
    for _ in 0..n {
        chats.push(start_chat(client, base).await);
    }
    chats
}

/// Sends `text` to `chat`, as the web page does.
pub async fn say(client: &reqwest::Client, base: &str, chat: &Chat, text: &str) -> reqwest::Result<reqwest::Response> {
    send(client, base, chat, serde_json::json!({ "text": text })).await
}

/// Sends `body` (`{"text": …}` or `{"button": …}`) to `chat`.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    chat: &Chat,
    body: serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(messages_url(base, chat))
        .bearer_auth(&chat.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
}

/// The echo bot's web-chat transcript of one conversation.
pub async fn echo_transcript(client: &reqwest::Client, base: &str, chat: &Chat) -> Vec<serde_json::Value> {
    transcript(client, base, chat, "after=0").await
}

/// Conversation `c{c}` of the echo bot after its `n` acknowledged messages `m{c}-{i}`: each
/// message is there once and, after the first (which starts the conversation), echoed once;
/// nothing else is there twice but the bot's repeated question.
pub fn assert_each_answered_once(seen: &[serde_json::Value], c: usize, n: usize) {
    let mut count: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for m in seen {
        *count.entry(format!("{}: {}", m["from"], m["text"].as_str().unwrap_or(""))).or_default() += 1;
    }
    for i in 0..n {
        let mut lines = vec![format!("\"user\": m{c}-{i}")];
        if i > 0 {
            lines.push(format!("\"bot\": echo m{c}-{i}"));
        }
        for line in lines {
            assert_eq!(count.get(&line), Some(&1), "conversation c{c}: {line} exactly once in {seen:#?}");
        }
    }
    for (line, k) in &count {
        assert!(*k == 1 || line.contains("Say something"), "c{c}: {line} appears {k} times");
    }
}
