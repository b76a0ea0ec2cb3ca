//! Nothing acknowledged is lost: `kill -9` the real binary while clients are sending, start
//! it again on the same data directory, and every message that got `202 Accepted` is
//! answered exactly once.

use crate::{Chat, banner_url, start_serve_in};
use std::time::{Duration, Instant};

const CONVERSATIONS: usize = 8;

/// Sends messages `m{c}-{i}` in order on each conversation `chats[c]` until `stop`, and
/// returns, per conversation, how many were acknowledged (each waits for the previous ack).
async fn send_until(base: &str, chats: &[Chat], stop: Instant) -> Vec<usize> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut tasks = Vec::new();
    for (c, chat) in chats.iter().enumerate() {
        let (client, base, chat) = (client.clone(), base.to_string(), chat.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            while Instant::now() < stop {
                match crate::say(&client, &base, &chat, &format!("m{c}-{acked}")).await {
                    Ok(r) if r.status() == 202 => acked += 1,
                    // The server died mid-request: this message was not acknowledged.
                    _ => break,
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

#[test]
fn kill_9_mid_load_loses_no_acknowledged_message_and_repeats_none() {
    let flows = tempfile::tempdir().expect("temp dir");
    std::fs::write(flows.path().join("echo.yaml"), crate::ECHO).expect("write");
    let data = tempfile::tempdir().expect("temp dir");
    let flow = flows.path().to_string_lossy().into_owned();
    // The senders are one client sending as fast as it can: lift the per-client limits.
    let config = crate::unlimited_config(flows.path());
    let args = ["--listen", "127.0.0.1:0", flow.as_str(), "--config", config.as_str()];
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let (mut server, banner) = start_serve_in(&args, data.path(), false);
    let base = banner_url(&banner).expect("url");
    // Kill the server while the senders are still going.
    let pid = server.id().to_string();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs")
    });
    let chats = rt.block_on(crate::start_chats(&crate::client(), &base, CONVERSATIONS));
    let acked = rt.block_on(send_until(&base, &chats, Instant::now() + Duration::from_secs(30)));
    assert!(killer.join().expect("killer").success());
    let _ = server.wait();
    let total: usize = acked.iter().sum();
    eprintln!("acked before the kill: {acked:?}");
    assert!(total >= 50, "the senders got going before the kill ({acked:?})");

    let (mut server, banner) = start_serve_in(&args, data.path(), false);
    let base = banner_url(&banner).expect("url");
    let client = crate::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (c, &n) in acked.iter().enumerate() {
        let last = if n > 1 { format!("echo m{c}-{}", n - 1) } else { "Say something".into() };
        let seen = loop {
            // Restarted, the server still knows the conversations' tokens.
            let seen = rt.block_on(crate::echo_transcript(&client, &base, &chats[c]));
            if n == 0 || seen.iter().any(|m| m["text"] == last.as_str()) || Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        crate::assert_each_answered_once(&seen, c, n);
    }
    // The history is readable while botc runs, and was written once per message.
    let dir = data.path().to_string_lossy().into_owned();
    let last = format!("  bot    echo m0-{}\n", acked[0].saturating_sub(1));
    let mut out = String::new();
    // History is written just after the batch it belongs to.
    for _ in 0..50 {
        let args =
            ["history", "--bot", "echo", "--conversation", &chats[0].id, "--data-dir", &dir, "--limit", "100000"];
        let o = crate::botc(&args);
        out = crate::stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&o.stderr));
        if out.contains(&last) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 1..acked[0] {
        assert_eq!(out.matches(&format!("  bot    echo m0-{i}\n")).count(), 1, "echo m0-{i} once in:\n{out}");
    }
    let o = crate::botc(&["history", "--bot", "echo", "--user", "nobody", "--data-dir", &dir]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("no history for user `nobody` of bot `echo`; users of bot `echo`")
            && err.contains(&format!("web:{}", chats[0].id)),
        "{err}"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// A botc.redb deleted (or emptied, or swapped) beside its history.sqlite is not silently
/// started empty: botc refuses and says what to do; `--new-store` goes on with no
/// conversations and keeps the history, and the pair is accepted from then on.
#[test]
fn a_store_deleted_beside_its_history_is_refused_until_new_store_is_given() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().to_string_lossy().into_owned();
    let args = ["flows/examples", "--listen", "127.0.0.1:0"];
    let (mut server, _) = start_serve_in(&args, data.path(), false);
    let _ = server.kill();
    let _ = server.wait();
    std::fs::remove_file(data.path().join("botc.redb")).expect("delete botc.redb");
    let o = crate::botc(&["serve", "flows/examples", "--listen", "127.0.0.1:0", "--data-dir", &dir]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("botc.redb is new (or was emptied)") && err.contains("--new-store"), "{err}");
    // Accepted once asked for, and from then on.
    let (mut server, banner) = start_serve_in(&[&args[..], &["--new-store"]].concat(), data.path(), false);
    assert!(banner_url(&banner).is_some(), "{banner}");
    let _ = server.kill();
    let _ = server.wait();
    let (mut server, banner) = start_serve_in(&args, data.path(), false);
    assert!(banner_url(&banner).is_some(), "the pair is accepted from then on: {banner}");
    let _ = server.kill();
    let _ = server.wait();
}

/// A small filesystem of its own (a tmpfs), unmounted when dropped. Mounting needs root;
/// `scripts/test` sets `BOTC_SKIP_DISK_FULL` (and says so) where the tests do not run as root.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let size = format!("size={megabytes}m");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "botc-test", &dir.path().to_string_lossy()])
            .output()
            .expect("mount runs");
        if mounted.status.success() {
            return Some(SmallDisk { dir });
        }
        let why = String::from_utf8_lossy(&mounted.stderr);
        if std::env::var_os("BOTC_SKIP_DISK_FULL").is_some() {
            eprintln!("skipped: cannot mount a tmpfs ({why}) and BOTC_SKIP_DISK_FULL is set");
            return None;
        }
        panic!(
            "this test fills a small tmpfs, and mounting one needs root: {why}\nrun the tests as root, or set \
             BOTC_SKIP_DISK_FULL=1 to skip it"
        );
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("create the filler");
        let chunk = vec![7u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Message `i` of the disk-full test: long, so the disk fills within a few hundred.
fn padded(i: usize) -> String {
    format!("m{i} {}", "x".repeat(1500))
}

/// Sends `padded(from..)` in order until the store refuses one with 503 (the disk is full);
/// returns how many were acknowledged.
async fn send_until_refused(client: &reqwest::Client, base: &str, chat: &Chat, from: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = from;
    loop {
        assert!(Instant::now() < deadline, "no 503 within 60 s of filling the disk ({} sent)", i - from);
        let r = crate::say(client, base, chat, &padded(i)).await.expect("the gateway answers");
        match r.status().as_u16() {
            202 => i += 1,
            503 => {
                assert!(r.headers().contains_key("retry-after"), "a 503 says when to retry");
                return i;
            }
            s => panic!("message {i}: status {s}: {}", r.text().await.unwrap_or_default()),
        }
    }
}

/// `/readyz`'s status and body.
async fn readyz(client: &reqwest::Client, base: &str) -> (u16, String) {
    let r = client.get(format!("{base}/readyz")).send().await.expect("readyz answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Every acknowledged message of `chat` (`padded(0..n)`) is in its transcript once, and each
/// after the first (which starts the conversation) is echoed once.
async fn assert_all_answered_once(client: &reqwest::Client, base: &str, chat: &Chat, n: usize) {
    // The first message starts the conversation; each later one is echoed.
    let last = if n > 1 { format!("echo {}", padded(n - 1)) } else { padded(0) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        // A long-poll: answered as soon as the conversation's transcript grows.
        let seen = crate::transcript(client, base, chat, "after=0&wait=1").await;
        if seen.iter().any(|m| m["text"] == last.as_str()) || Instant::now() > deadline {
            break seen;
        }
    };
    let count = |from: &str, text: &str| seen.iter().filter(|m| m["from"] == from && m["text"] == text).count();
    for i in 0..n {
        assert_eq!(count("user", &padded(i)), 1, "message {i} is in the transcript once");
        if i > 0 {
            assert_eq!(count("bot", &format!("echo {}", padded(i))), 1, "message {i} is answered once");
        }
    }
}

/// A real full disk under a running botc: events are refused with 503 + Retry-After and
/// /readyz says why; once space is freed botc takes events again with no restart; SIGTERM
/// while the disk is full stops it within seconds; and no acknowledged message is lost or
/// answered twice through all of it.
#[test]
fn a_full_disk_refuses_events_heals_without_a_restart_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(24) else { return };
    let flows = tempfile::tempdir().expect("temp dir");
    std::fs::write(flows.path().join("echo.yaml"), crate::ECHO).expect("write");
    let flow = flows.path().to_string_lossy().into_owned();
    let config = crate::unlimited_config(flows.path());
    let args = ["--listen", "127.0.0.1:0", flow.as_str(), "--config", config.as_str()];
    let data = disk.path().join("data");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = crate::client();

    let (mut server, banner) = start_serve_in(&args, &data, true);
    let mut log = crate::Log::of(&mut server);
    let base = banner_url(&banner).expect("url");
    let chat = rt.block_on(crate::start_chat(&client, &base));
    const BEFORE: usize = 20;
    for i in 0..BEFORE {
        let r = rt.block_on(crate::say(&client, &base, &chat, &padded(i))).expect("answers");
        assert_eq!(r.status(), 202);
    }
    disk.fill();
    let acked = rt.block_on(send_until_refused(&client, &base, &chat, BEFORE));
    let (status, body) = rt.block_on(readyz(&client, &base));
    assert_eq!(status, 503, "not ready while the disk is full: {body}");
    assert!(body.contains("No space left on device"), "/readyz says why: {body}");

    // Space again: ready again by itself, and events are taken.
    disk.free();
    // The writer says when its writes work again (it may have said so before too, between
    // failures while the disk filled): ready once a recovery comes after the last failure.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
        log.wait_for("store writes work again", left);
        if rt.block_on(readyz(&client, &base)).0 == 200 {
            break;
        }
    }
    let r = rt.block_on(crate::say(&client, &base, &chat, &padded(acked))).expect("answers");
    assert_eq!(r.status(), 202, "events are taken again with no restart");
    let acked = acked + 1;
    rt.block_on(assert_all_answered_once(&client, &base, &chat, acked));

    // Full again, and stopped while full: SIGTERM ends it within seconds.
    disk.fill();
    let acked = rt.block_on(send_until_refused(&client, &base, &chat, acked));
    let term = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    assert!(term.expect("kill runs").success());
    assert!(crate::exits_within(server, 10), "botc serve did not stop within 10 s of SIGTERM on a full disk");

    // Started again with space: everything acknowledged is there once.
    disk.free();
    let (mut server, banner) = start_serve_in(&args, &data, false);
    let base = banner_url(&banner).expect("url");
    rt.block_on(assert_all_answered_once(&client, &base, &chat, acked));
    let _ = server.kill();
    let _ = server.wait();
}
