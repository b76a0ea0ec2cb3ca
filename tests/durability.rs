//! Nothing acknowledged is lost: `kill -9` the real binary while clients are sending, start
//! it again on the same data directory, and every message that got `202 Accepted` is
//! answered exactly once.

use crate::{banner_url, start_serve_in};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Answers every message, forever: `ask` into `t`, then `say` it back.
const ECHO: &str = "flow: echo\nstart: listen\nvars:\n  t: text\nnodes:\n  listen:\n    ask: \"Say something\"\n    into: t\n    next: answer\n  answer:\n    say: \"echo {{ t }}\"\n    next: listen\n";

const CONVERSATIONS: usize = 8;

/// Sends messages `m{conversation}-{i}` in order on each conversation until `stop`, and
/// returns, per conversation, how many were acknowledged (each waits for the previous ack).
async fn send_until(base: &str, stop: Instant) -> Vec<usize> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut tasks = Vec::new();
    for c in 0..CONVERSATIONS {
        let (client, base) = (client.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            while Instant::now() < stop {
                let url = format!("{base}/api/bots/echo/conversations/c{c}/messages");
                let body = format!("{{\"text\": \"m{c}-{acked}\"}}");
                match client.post(url).body(body).send().await {
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

async fn transcript(client: &reqwest::Client, base: &str, c: usize) -> Vec<Value> {
    let url = format!("{base}/api/bots/echo/conversations/c{c}/messages?after=0");
    let v: Value = client.get(url).send().await.expect("get").json().await.expect("json");
    v["messages"].as_array().cloned().unwrap_or_default()
}

#[test]
fn kill_9_mid_load_loses_no_acknowledged_message_and_repeats_none() {
    let flows = tempfile::tempdir().expect("temp dir");
    std::fs::write(flows.path().join("echo.yaml"), ECHO).expect("write");
    let data = tempfile::tempdir().expect("temp dir");
    let flow = flows.path().to_string_lossy().into_owned();
    let args = ["--listen", "127.0.0.1:0", flow.as_str()];
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let (mut server, banner) = start_serve_in(&args, data.path(), false);
    let base = banner_url(&banner).expect("url");
    // Kill the server while the senders are still going.
    let pid = server.id().to_string();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs")
    });
    let acked = rt.block_on(send_until(&base, Instant::now() + Duration::from_secs(30)));
    assert!(killer.join().expect("killer").success());
    let _ = server.wait();
    let total: usize = acked.iter().sum();
    eprintln!("acked before the kill: {acked:?}");
    assert!(total >= 50, "the senders got going before the kill ({acked:?})");

    let (mut server, banner) = start_serve_in(&args, data.path(), false);
    let base = banner_url(&banner).expect("url");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (c, &n) in acked.iter().enumerate() {
        let last = if n > 1 { format!("echo m{c}-{}", n - 1) } else { "Say something".into() };
        let seen = loop {
            let seen = rt.block_on(transcript(&client, &base, c));
            if n == 0 || seen.iter().any(|m| m["text"] == last.as_str()) || Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut count: HashMap<String, usize> = HashMap::new();
        for m in &seen {
            *count.entry(format!("{}: {}", m["from"], m["text"].as_str().unwrap_or(""))).or_default() += 1;
        }
        // The first message starts the conversation; every later one is echoed.
        for i in 0..n {
            let mut lines = vec![format!("\"user\": m{c}-{i}")];
            if i > 0 {
                lines.push(format!("\"bot\": echo m{c}-{i}"));
            }
            for line in lines {
                assert_eq!(count.get(&line), Some(&1), "conversation c{c}: {line} exactly once in {seen:#?}");
            }
        }
        // Nothing is there twice (a message in flight at the kill was taken whole or not at
        // all), except the bot's repeated question.
        for (line, k) in &count {
            assert!(*k == 1 || line.contains("Say something"), "c{c}: {line} appears {k} times");
        }
    }
    // The history is readable while botc runs, and was written once per message.
    let dir = data.path().to_string_lossy().into_owned();
    let last = format!("  bot    echo m0-{}\n", acked[0].saturating_sub(1));
    let mut out = String::new();
    // History is written just after the batch it belongs to.
    for _ in 0..50 {
        let o =
            crate::botc(&["history", "--bot", "echo", "--conversation", "c0", "--data-dir", &dir, "--limit", "100000"]);
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
        err.contains("no history for user `nobody` of bot `echo`; users of bot `echo`") && err.contains("web:c0"),
        "{err}"
    );
    let _ = server.kill();
    let _ = server.wait();
}
