//! Hostile input through the real binary: oversized, non-UTF-8 and binary-noise files (each
//! gets a clear diagnostic and exit 1, never a crash), and attacks on a running `botc serve`
//! (operator actions without a token, a flooding client, a flood of connections that uses up
//! its file descriptors).

use crate::{botc, stdout};

fn temp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("botc-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p.to_string_lossy().into_owned()
}

#[test]
fn a_100_mb_file_is_refused_with_the_limit() {
    let p = temp("huge.yaml", &vec![b'#'; 100 * 1024 * 1024]);
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("E0003") && out.contains("limited to 10485760 bytes"), "{out}");
    std::fs::remove_file(p).expect("cleanup");
}

#[test]
fn non_utf8_is_refused_with_its_offset() {
    let p = temp("latin1.yaml", b"flow: caf\xe9\nstart: a\n");
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("E0004") && out.contains("offset 9, line 1"), "{out}");
}

#[test]
fn binary_noise_is_a_syntax_error_not_a_crash() {
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x7f).collect();
    let p = temp("noise.yaml", &noise);
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

/// Expressions nested or chained far beyond any real flow (a 6 KB sum, hundreds of
/// parentheses or `not`s) are an input limit (E0003) in both forms, never a stack overflow.
#[test]
fn huge_expressions_are_an_input_limit_not_a_crash() {
    let sum = vec!["1"; 1600].join(" + ");
    let deep = format!("{}1{}", "(".repeat(900), ")".repeat(900));
    let nots = format!("{}true", "not ".repeat(5000));
    for (name, expr) in [("sum", &sum), ("deep", &deep), ("nots", &nots)] {
        let ty = if name == "nots" { "boolean" } else { "integer" };
        let yaml = format!(
            "flow: big\nstart: a\nvars:\n  v: {{ type: {ty} }}\nnodes:\n  a:\n    set: {{ v: '{expr}' }}\n    next: b\n  b:\n    say: \"{{{{ v }}}}\"\n    next: c\n  c:\n    end:\n"
        );
        let dsl = format!(
            "flow big\nstart a\nvar v: {ty}\nnode a {{\n  set v = {expr}\n  next b\n}}\nnode b {{ say \"{{{{ v }}}}\" next c }}\nnode c {{ end }}\n"
        );
        for (file, src) in [(format!("{name}.yaml"), yaml), (format!("{name}.flow"), dsl)] {
            let p = temp(&file, src.as_bytes());
            let o = botc(&["check", "--format", "json", &p]);
            let out = stdout(&o);
            assert_eq!(o.status.code(), Some(1), "{file}: {out}{}", String::from_utf8_lossy(&o.stderr));
            assert!(out.contains("\"E0003\""), "{file}: an input limit, said as such: {out}");
        }
    }
}

/// `botc serve` on a public address with no operator token: anyone can chat, nobody can hand
/// a conversation back or count conversations (403 saying what to set); an operator token
/// configured but missing or short stops the server before it binds.
#[test]
fn operator_actions_are_off_on_a_public_address_without_a_token() {
    let (mut server, banner, _data) = crate::start_serve(&["--listen", "0.0.0.0:0", "flows/examples"], false);
    let port = crate::banner_url(&banner).and_then(|u| u.rsplit(':').next().map(String::from)).expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl").arg("-s").args(args).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Anyone may start a conversation; it is then theirs: its token reads and writes it.
    let started: serde_json::Value =
        serde_json::from_str(&curl(&["-X", "POST", &format!("{base}/api/bots/pizza_order/conversations")]))
            .expect("a conversation as JSON");
    let (id, token) = (started["conversation"].as_str().expect("id"), started["token"].as_str().expect("token"));
    let messages = format!("{base}/api/bots/pizza_order/conversations/{id}/messages");
    let chat =
        ["-H", "content-type: application/json", "-d", r#"{"text": "hi"}"#, "-o", "/dev/null", "-w", "%{http_code}"];
    let bearer = format!("authorization: Bearer {token}");
    assert_eq!(curl(&[&chat[..], &["-H", &bearer, &messages]].concat()), "202");
    assert_eq!(curl(&[&chat[..], &[&messages]].concat()), "401", "the id alone is not enough");
    assert_eq!(curl(&["-o", "/dev/null", "-w", "%{http_code}", &messages]), "401", "nor to read it");
    let hand_back = curl(&[
        "-X",
        "POST",
        "-w",
        " %{http_code}",
        &format!("{base}/api/bots/pizza_order/conversations/{id}/handback"),
    ]);
    assert!(hand_back.ends_with(" 403") && hand_back.contains("[admin] token_env"), "{hand_back}");
    let graph = curl(&[&format!("{base}/api/bots/pizza_order/graph")]);
    assert!(graph.contains("\"counted\":null"), "no counts for the public: {graph}");
    let _ = server.kill();
    let _ = server.wait();

    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("botc.toml");
    std::fs::write(&config, "[admin]\ntoken_env = \"BOTC_TEST_OPERATOR_TOKEN\"\n").expect("write");
    let run = |token: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_botc"));
        c.args(["serve", "flows/examples", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .current_dir(crate::root());
        c.env_remove("BOTC_TEST_OPERATOR_TOKEN");
        if let Some(t) = token {
            c.env("BOTC_TEST_OPERATOR_TOKEN", t);
        }
        c.output().expect("botc runs")
    };
    for (token, says) in [(None, "is not set"), (Some("short"), "too short")] {
        let out = run(token);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("BOTC_TEST_OPERATOR_TOKEN") && err.contains(says), "{err}");
    }
}

/// A client that floods one conversation through the real binary is refused with 429 and
/// `Retry-After` once past its budget (ten at once, by default), and what was refused is not
/// in the transcript.
#[test]
fn a_flooding_client_is_refused_with_429_through_the_binary() {
    let (mut server, banner, _data) = crate::start_serve(&["--listen", "127.0.0.1:0", "flows/examples"], false);
    let base = crate::banner_url(&banner).expect("url");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = crate::client();
    let (statuses, seen) = rt.block_on(async {
        let chat = crate::start_chat_of(&client, &base, "pizza_order").await;
        let mut statuses = Vec::new();
        for i in 0..15 {
            let r = crate::say(&client, &base, &chat, &format!("flood {i}")).await.expect("answers");
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string());
            statuses.push((r.status().as_u16(), retry));
        }
        (statuses, crate::transcript(&client, &base, &chat, "after=0&wait=1").await)
    });
    let _ = server.kill();
    let _ = server.wait();
    // Ten at once, then one every two seconds: a slow machine may see one more taken.
    let taken = statuses.iter().filter(|(s, _)| *s == 202).count();
    assert!((10..=11).contains(&taken), "the burst is taken, the flood is not: {statuses:?}");
    assert!(statuses[..10].iter().all(|(s, _)| *s == 202), "{statuses:?}");
    assert!(statuses.iter().all(|(s, r)| *s == 202 || (*s == 429 && r.is_some())), "{statuses:?}");
    let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.iter().all(|t| *t != "flood 10" && *t != "flood 14"), "a refused message was stored: {texts:?}");
}

/// File descriptors run out (a flood of idle connections against `ulimit -n 128`): botc stops
/// accepting, says so in its log, keeps running, and answers again as soon as the flood's
/// connections close, chats included.
#[test]
fn running_out_of_file_descriptors_degrades_and_recovers() {
    use std::time::{Duration, Instant};
    const FDS: usize = 128;
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = std::process::Command::new("prlimit")
        .arg(format!("--nofile={FDS}:{FDS}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_botc"))
        .args(["serve", "flows/examples", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .current_dir(crate::root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit runs botc serve");
    let base = crate::banner_url(&crate::first_line(&mut server, "botc serve")).expect("url");
    let mut log = crate::Log::of(&mut server);
    let address = base.trim_start_matches("http://").to_string();
    // More connections than botc may have files: the kernel queues the ones botc cannot
    // accept (a few dozen: its accept queue holds them at once).
    let flood: Vec<std::net::TcpStream> = (0..FDS + 32)
        .map(|_| std::net::TcpStream::connect(&address).expect("the kernel takes the connection"))
        .collect();
    log.wait_for("cannot accept connections", 10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
    let meanwhile = rt.block_on(async { quick.get(format!("{base}/healthz")).send().await });
    assert!(meanwhile.is_err(), "nothing is accepted while no file descriptor is free: {meanwhile:?}");
    assert!(server.try_wait().expect("wait").is_none(), "botc keeps running");

    drop(flood);
    let client = crate::client();
    let started = Instant::now();
    let health = rt
        .block_on(async { client.get(format!("{base}/healthz")).send().await })
        .expect("answers once the flood closes");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10), "recovered in {:?}", started.elapsed());
    let seen = rt.block_on(async {
        let chat = crate::start_chat_of(&client, &base, "pizza_order").await;
        let r = crate::say(&client, &base, &chat, "hi").await.expect("answers");
        assert_eq!(r.status(), 202);
        // Long-polls, each answered as soon as the transcript grows.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while !seen.iter().any(|m: &serde_json::Value| m["from"] == "bot") && Instant::now() < deadline {
            let after = seen.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
            seen.extend(crate::transcript(&client, &base, &chat, &format!("after={after}&wait=5")).await);
        }
        seen
    });
    assert!(seen.iter().any(|m| m["from"] == "bot"), "the bot answers after the flood: {seen:?}");
    let _ = server.kill();
    let _ = server.wait();
}

/// The web API's attacks, each sent to the real binary, each refused with its own status and
/// nothing stored: another conversation's transcript, a cross-site form post, a foreign
/// page's request, malformed queries and ids, control characters, an oversized body, a
/// hand-back without the operator token or for a conversation that does not exist, more
/// long-polls than an address may hold, a retried send, and slowloris connections.
#[test]
fn web_api_attacks_are_refused_through_the_binary() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    const OPERATOR: &str = "an-operator-token-of-forty-characters-ok";
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("botc.toml");
    let settings = "[limits]\nheader_read_seconds = 1\nbody_limit = 4096\nclient_long_polls = 2\n\n[admin]\ntoken_env = \"BOTC_TEST_OPERATOR_TOKEN\"\n";
    std::fs::write(&config, settings).expect("write");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["serve", "flows/examples", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("BOTC_TEST_OPERATOR_TOKEN", OPERATOR)
        .current_dir(crate::root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("botc serve starts");
    let base = crate::banner_url(&crate::first_line(&mut server, "botc serve")).expect("url");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = crate::client();
    let (alice, mallory) = rt.block_on(async {
        let alice = crate::start_chat_of(&client, &base, "pizza_order").await;
        (alice.clone(), crate::start_chat_of(&client, &base, "pizza_order").await)
    });
    let url = crate::messages_url(&base, &alice);
    let status = |r: reqwest::Response| async move {
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    };
    rt.block_on(async {
        let r = crate::say(&client, &base, &alice, "hi").await.expect("answers");
        assert_eq!(r.status(), 202);
        let checks: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
            ("another conversation's token", client.get(&url).bearer_auth(&mallory.token), 401, ""),
            (
                "a form post (no CORS preflight)",
                client
                    .post(&url)
                    .bearer_auth(&alice.token)
                    .header("content-type", "text/plain")
                    .body(r#"{"text":"x"}"#),
                415,
                "application/json",
            ),
            (
                "a page on another site",
                client
                    .post(&url)
                    .bearer_auth(&alice.token)
                    .header("content-type", "application/json")
                    .header("origin", "https://evil.example")
                    .body(r#"{"text":"x"}"#),
                403,
                "allowed_origins",
            ),
            (
                "`wait` that is not a number",
                client.get(format!("{url}?wait=abc")).bearer_auth(&alice.token),
                400,
                "wait",
            ),
            ("`after` that is negative", client.get(format!("{url}?after=-1")).bearer_auth(&alice.token), 400, "after"),
            (
                "an overlong conversation id",
                client.get(format!("{base}/api/bots/pizza_order/conversations/{}/messages", "a".repeat(200))),
                400,
                "1-128",
            ),
            (
                "control characters",
                client
                    .post(&url)
                    .bearer_auth(&alice.token)
                    .header("content-type", "application/json")
                    .body(r#"{"text": "\u001b[31mred"}"#),
                400,
                "control characters",
            ),
            (
                "a body over the limit",
                client
                    .post(&url)
                    .bearer_auth(&alice.token)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"text": "{}"}}"#, "x".repeat(5000))),
                413,
                "limit",
            ),
            (
                "a hand-back without the operator token",
                client.post(format!("{base}/api/bots/pizza_order/conversations/{}/handback", alice.id)),
                401,
                "",
            ),
            (
                "a hand-back of a conversation that does not exist",
                client.post(format!("{base}/api/bots/pizza_order/conversations/nobody/handback")).bearer_auth(OPERATOR),
                404,
                "no conversation",
            ),
            (
                "the operator token writing to a conversation",
                client
                    .post(&url)
                    .bearer_auth(OPERATOR)
                    .header("content-type", "application/json")
                    .body(r#"{"text":"x"}"#),
                401,
                "",
            ),
        ];
        for (attack, request, want, says) in checks {
            let (code, body) = status(request.send().await.expect("answers")).await;
            assert_eq!(code, want, "{attack}: {body}");
            assert!(body.contains(says), "{attack}: the refusal says what is wrong: {body}");
        }
        // Nothing refused reached the conversation.
        let seen = crate::transcript(&client, &base, &alice, "after=0").await;
        let users: Vec<&str> = seen.iter().filter(|m| m["from"] == "user").filter_map(|m| m["text"].as_str()).collect();
        assert_eq!(users, ["hi"], "{seen:?}");

        // A send retried with the client's id is taken once.
        let body = r#"{"text": "twice", "id": "m-1"}"#;
        for duplicate in [false, true] {
            let r = client
                .post(&url)
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("answers");
            assert_eq!(r.status(), 202);
            let v: serde_json::Value = r.json().await.expect("json");
            assert_eq!(v["duplicate"], duplicate, "{v}");
        }

        // Two long-polls per address; a third is refused at once.
        let last = seen.last().and_then(|m| m["seq"].as_u64()).expect("seq") + 100;
        let poll = format!("{url}?after={last}&wait=20");
        let held: Vec<_> = (0..2).map(|_| tokio::spawn(client.get(&poll).bearer_auth(&alice.token).send())).collect();
        // Once both are held (the gauge says so), a third is refused at once.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = client.get(format!("{base}/metrics")).bearer_auth(OPERATOR).send().await.expect("metrics");
            if m.text().await.unwrap_or_default().lines().any(|l| l == "botc_web_long_polls 2") {
                break;
            }
            assert!(Instant::now() < deadline, "the two long-polls were never both held");
        }
        let third = client.get(&poll).bearer_auth(&alice.token).timeout(Duration::from_secs(5)).send().await;
        let third = third.expect("a third long-poll is refused at once, not held");
        assert_eq!(third.status(), 429);
        assert!(third.headers().contains_key("retry-after"));
        for h in held {
            h.abort();
        }
    });

    // Slowloris: a head that never ends, sent at once or a line at a time, is closed once
    // `header_read_seconds` (1 s here) is up.
    let address = base.trim_start_matches("http://");
    for dribble in [false, true] {
        let mut c = std::net::TcpStream::connect(address).expect("connects");
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("writes");
        let started = Instant::now();
        let closed = if dribble {
            c.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
            loop {
                let _ = c.write_all(b"X-Slow: 1\r\n");
                match c.read(&mut [0; 64]) {
                    Ok(_) => break true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break true,
                }
                if started.elapsed() > Duration::from_secs(5) {
                    break false;
                }
            }
        } else {
            c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).is_ok()
        };
        assert!(closed, "a slow head (dribbled: {dribble}) was not closed within 5 s");
        assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    }
    let _ = server.kill();
    let _ = server.wait();
}
