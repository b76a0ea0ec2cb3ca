//! `botc deploy`, `rollback`, `versions` and `deploys` end to end, from a real temporary git
//! repository, against `botc serve`'s registry (history.sqlite) while a server follows the
//! environment; the same deploy under load in the distributed runtime is in
//! `distributed.rs`.

use crate::{Chat, ECHO, banner_url};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The echo bot with another answer: every place a conversation waits carries over.
pub const ECHO_2: &str = "flow: echo\nstart: listen\nvars:\n  t: text\nnodes:\n  listen:\n    ask: \"Say something\"\n    into: t\n    next: answer\n  answer:\n    say: \"echo2 {{ t }}\"\n    next: listen\n";
/// The echo bot with its question renamed: conversations waiting at `listen` start over.
const ECHO_RENAMED: &str = "flow: echo\nstart: hear\nvars:\n  t: text\nnodes:\n  hear:\n    ask: \"Say something new\"\n    into: t\n    next: answer\n  answer:\n    say: \"echo {{ t }}\"\n    next: hear\n";

/// Runs `botc ARGS` in `dir` (as an author in their repository would).
pub fn botc_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_botc"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1").env("USER", "ada");
    crate::output_within(&mut cmd, 120)
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A repository with `flows/echo.yaml` committed, and the commit's hash.
pub fn repo_with(flow: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("flows")).expect("mkdir");
    std::fs::write(dir.path().join("flows/echo.yaml"), flow).expect("write");
    // The data directory is not part of the flows.
    std::fs::write(dir.path().join(".gitignore"), "data/\n").expect("write");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "The echo bot"]);
    let head = head(dir.path());
    (dir, head)
}

/// Writes `flow` to `file` in the repository and commits it.
pub fn commit(dir: &Path, file: &str, flow: &str, message: &str) -> String {
    std::fs::write(dir.join(file), flow).expect("write");
    git(dir, &["commit", "-qam", message]);
    head(dir)
}

fn head(dir: &Path) -> String {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(dir).output().expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A `botc serve --environment production` on the repository's data directory.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(repo: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_botc"))
            .args(["serve", "flows", "--data-dir", "data", "--environment", "production", "--listen", "127.0.0.1:0"])
            .current_dir(repo)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("botc serve starts");
        let banner = crate::first_line(&mut child, "botc serve");
        let base = banner_url(&banner).unwrap_or_else(|| panic!("no URL in the banner {banner:?}"));
        Server { child, base }
    }

    /// SIGTERM, and wait (at most 10 s) for it to finish.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "botc serve did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new conversation of the echo bot, as the server issues it.
fn chat(base: &str) -> Chat {
    let out = Command::new("curl").args(["-s", "-X", "POST", &format!("{base}/api/bots/echo/conversations")]).output();
    let v: serde_json::Value = serde_json::from_slice(&out.expect("curl").stdout).unwrap_or_default();
    let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no `{k}` in {v}")).to_string();
    Chat { bot: "echo".into(), id: field("conversation"), token: field("token") }
}

fn say(base: &str, chat: &Chat, text: &str) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {}", chat.token), "-d"])
        .arg(format!("{{\"text\": \"{text}\"}}"))
        .arg(format!("{base}/api/bots/echo/conversations/{}/messages", chat.id))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "message {text:?} to {}", chat.id);
}

/// The bot's messages in a conversation's transcript.
fn said(base: &str, chat: &Chat) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-s", "-H", &format!("authorization: Bearer {}", chat.token)])
        .arg(format!("{base}/api/bots/echo/conversations/{}/messages?after=0", chat.id))
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["from"] == "bot")
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

/// Waits (at most 20 s) until the bot has said `want` in `chat`.
fn wait_said(base: &str, chat: &Chat, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = said(base, chat);
        if got.iter().any(|l| l == want) {
            return;
        }
        assert!(Instant::now() < deadline, "{}: the bot never said {want:?}; it said {got:?}", chat.id);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 20 s) until the bot's last message in `chat` is one of `any`.
fn wait_any(base: &str, chat: &Chat, any: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = said(base, chat);
        if let Some(last) = got.last().filter(|l| any.contains(&l.as_str())) {
            return last.clone();
        }
        assert!(Instant::now() < deadline, "{}: the bot said none of {any:?}; it said {got:?}", chat.id);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_deploy_records_its_commit_and_refuses_what_it_cannot_vouch_for() {
    let (repo, first) = repo_with(ECHO);
    let dir = repo.path();
    let dry = botc_in(dir, &["deploy", "flows", "--data-dir", "data", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("echo: first deploy"), "{}", text(&dry));
    let none = botc_in(dir, &["versions", "echo", "--data-dir", "data"]);
    assert_eq!(none.status.code(), Some(2), "a dry run registered nothing: {}", text(&none));

    let out = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("production `echo` is now version 1"), "{}", text(&out));
    let versions = text(&botc_in(dir, &["versions", "echo", "--data-dir", "data"]));
    let v1 = versions.lines().find(|l| l.trim_start().starts_with("v1")).unwrap_or_default();
    for part in [&first[..10], "Ada Lovelace <ada@example.com>", "The echo bot", "<- production"] {
        assert!(v1.contains(part), "v1's line has {part:?}: {versions}");
    }
    let again = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert!(text(&again).contains("nothing to deploy"), "{}", text(&again));

    // A flow changed but not committed is not what any commit says: refused, named.
    std::fs::write(dir.join("flows/echo.yaml"), ECHO_2).expect("write");
    let dirty = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert_eq!(dirty.status.code(), Some(2), "{}", text(&dirty));
    assert!(text(&dirty).contains("flows/echo.yaml") && text(&dirty).contains("--allow-dirty"), "{}", text(&dirty));
    let allowed = botc_in(dir, &["deploy", "flows", "--data-dir", "data", "--allow-dirty"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    let versions = text(&botc_in(dir, &["versions", "echo", "--data-dir", "data"]));
    assert!(versions.contains(&format!("{}-dirty", &first[..10])), "recorded as dirty: {versions}");

    // Outside any repository there is no commit to record.
    let bare = tempfile::tempdir().expect("dir");
    std::fs::write(bare.path().join("echo.yaml"), ECHO).expect("write");
    let outside = botc_in(bare.path(), &["deploy", "echo.yaml", "--data-dir", "data"]);
    assert_eq!(outside.status.code(), Some(2), "{}", text(&outside));
    assert!(text(&outside).contains("not in a git work tree"), "{}", text(&outside));

    // A flow that does not check is never deployed.
    std::fs::write(dir.join("flows/echo.yaml"), "flow: echo\nstart: nowhere\nnodes: {}\n").expect("write");
    git(dir, &["commit", "-qam", "broken"]);
    let broken = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert_ne!(broken.status.code(), Some(0), "{}", text(&broken));
    let deploys = text(&botc_in(dir, &["deploys", "--data-dir", "data"]));
    assert_eq!(deploys.lines().count(), 2, "two deploys, the broken flow none: {deploys}");
}

#[test]
fn deploys_move_waiting_conversations_as_planned_and_a_rollback_brings_back_the_old_version() {
    let (repo, _) = repo_with(ECHO);
    let dir = repo.path();
    let out = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let server = Server::start(dir);
    let (a, b) = (chat(&server.base), chat(&server.base));
    for c in [&a, &b] {
        say(&server.base, c, "hi");
        wait_said(&server.base, c, "Say something");
    }
    say(&server.base, &a, "one");
    wait_said(&server.base, &a, "echo one");

    // Renaming the question would start both conversations over: refused, while the server
    // runs (the plan says where, uncounted) and once it is stopped (counted exactly).
    commit(dir, "flows/echo.yaml", ECHO_RENAMED, "Rename the question");
    let refused = botc_in(dir, &["deploy", "flows", "--data-dir", "data"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("at listen (ask): would start over"), "{}", text(&refused));
    assert!(text(&refused).contains("--allow-restarts"), "{}", text(&refused));
    server.stop();
    let counted = botc_in(dir, &["deploy", "flows", "--data-dir", "data", "--dry-run"]);
    assert!(
        text(&counted).contains("2 waiting conversation(s): 0 move on, 2 start over"),
        "the plan counts both: {}",
        text(&counted)
    );
    assert!(text(&counted).contains("refused"), "{}", text(&counted));
    let forced = botc_in(dir, &["deploy", "flows", "--data-dir", "data", "--allow-restarts"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));

    // As planned: `a` starts over at its next message.
    let server = Server::start(dir);
    say(&server.base, &a, "two");
    wait_said(&server.base, &a, "Say something new");

    // Rolled back while the server runs: it follows within seconds, and `b`, which waited
    // on version 1 all along, carries on there.
    let back = botc_in(dir, &["rollback", "echo", "--data-dir", "data", "--allow-restarts"]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert!(text(&back).contains("production `echo` is now version 1"), "{}", text(&back));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = chat(&server.base);
        say(&server.base, &probe, "hi");
        if wait_any(&server.base, &probe, &["Say something", "Say something new"]) == "Say something" {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not follow the rollback within 20 s");
    }
    say(&server.base, &b, "three");
    wait_said(&server.base, &b, "echo three");
    let deploys = text(&botc_in(dir, &["deploys", "--bot", "echo", "--data-dir", "data"]));
    let actions: Vec<&str> = deploys.lines().filter_map(|l| l.split_whitespace().nth(3)).collect();
    assert_eq!(actions, ["rollback", "deploy", "deploy"], "{deploys}");
    let recorded = deploys.lines().nth(1).unwrap_or_default();
    assert!(recorded.contains("diff: 0 resume, 1 restart") && recorded.contains("2 started over"), "{deploys}");
}
