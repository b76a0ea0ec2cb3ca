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
