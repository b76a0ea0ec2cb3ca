//! `botc test`, `botc chat` and `botc diff` through the real binary.

use crate::{banner_url, botc, root, start_serve, stdout};
use std::process::{Command, Stdio};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("botc-conv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn every_example_and_ok_flow_passes_its_tests_with_full_node_coverage() {
    for dir in ["flows/examples", "flows/ok"] {
        let o = botc(&["test", dir, "--coverage"]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&o.stderr));
        let coverage: Vec<&str> = out.lines().filter(|l| l.starts_with("coverage ")).collect();
        assert!(!coverage.is_empty(), "{out}");
        for line in coverage {
            let nodes = line.split("nodes ").nth(1).and_then(|r| r.split(' ').next()).expect("nodes a/b");
            let (hit, total) = nodes.split_once('/').expect("a/b");
            assert_eq!(hit, total, "not every node is tested: {line}");
        }
    }
}

const FLOW: &str = "flow: t\nstart: ask\nvars:\n  n: integer\nnodes:\n  ask:\n    ask: Number?\n    into: n\n    expect: integer\n    next: show\n  show:\n    say: \"twice is {{ n * 2 }}\"\n    next: done\n  done:\n    end:\n";

#[test]
fn a_failing_test_shows_expected_and_actual_and_fails_the_run() {
    let d = temp_dir("failing");
    std::fs::write(d.join("t.yaml"), FLOW).expect("write");
    std::fs::write(
        d.join("t.test.yaml"),
        "flow: t.yaml\ntests:\n  - name: doubles\n    steps:\n      - user: hi\n        bot: [\"Number?\"]\n      - user: \"21\"\n        bot: [\"twice is 42\"]\n        ended: true\n  - name: wrong on purpose\n    steps:\n      - user: hi\n      - user: \"2\"\n        bot: [\"twice is 5\"]\n  - name: starts in the middle\n    vars: { n: 5 }\n    steps:\n      - start: show\n        bot: [\"twice is 10\"]\n        ended: true\n        vars: { n: 5 }\n",
    )
    .expect("write");
    let o = botc(&["test", &d.to_string_lossy()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ok    doubles"), "{out}");
    assert!(out.contains("ok    starts in the middle"), "{out}");
    assert!(
        out.contains("FAIL  wrong on purpose") && out.contains("\"twice is 5\"") && out.contains("\"twice is 4\""),
        "{out}"
    );
    let junit = stdout(&botc(&["test", "--format", "junit", &d.to_string_lossy()]));
    let report = quick_junit::Report::deserialize_from_str(&junit).expect("the JUnit report parses");
    assert_eq!((report.tests, report.failures), (3, 1), "{junit}");
    assert!(junit.contains("<failure message=\"step 2"), "{junit}");
}

#[test]
fn a_junit_report_holds_no_character_xml_cannot() {
    let d = temp_dir("junit-control");
    // The bot rings a bell and colours its text: a failure message quotes both.
    let flow = "flow: t\nstart: hi\nnodes:\n  hi:\n    say: \"ding\\a \\e[31mred\\e[0m & <done>\"\n    next: done\n  done:\n    end:\n";
    std::fs::write(d.join("t.yaml"), flow).expect("write");
    std::fs::write(
        d.join("t.test.yaml"),
        "flow: t.yaml\ntests:\n  - name: expects another text\n    steps:\n      - user: hi\n        bot: [\"dong\"]\n",
    )
    .expect("write");
    let junit = stdout(&botc(&["test", "--format", "junit", &d.to_string_lossy()]));
    let bad: Vec<char> = junit.chars().filter(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')).collect();
    assert!(bad.is_empty(), "characters XML 1.0 forbids: {bad:?} in\n{junit}");
    let report = quick_junit::Report::deserialize_from_str(&junit).expect("the JUnit report parses");
    assert_eq!(report.failures, 1, "{junit}");
    assert!(junit.contains("red") && junit.contains("&amp; &lt;done&gt;"), "the text is kept, escaped: {junit}");
}

#[test]
fn a_broken_test_file_names_its_line() {
    let d = temp_dir("broken");
    std::fs::write(d.join("t.yaml"), FLOW).expect("write");
    std::fs::write(d.join("t.test.yaml"), "flow: t.yaml\ntests:\n  - name: x\n    steps:\n      - usr: hi\n")
        .expect("write");
    let o = botc(&["test", &d.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("t.test.yaml:5:") && err.contains("unknown key `usr`"), "{err}");
}

/// `botc chat ARGS` (from the repository root) with `input` piped in: it exits, and what it
/// printed.
fn chat(args: &[&str], input: &[u8]) -> (std::process::ExitStatus, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_botc"))
        .arg("chat")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    let out = child.wait_with_output().expect("runs");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn chat_works_through_a_pipe() {
    let (status, text) =
        chat(&["flows/examples/pizza_order.yaml", "--user", "Ada"], b"hi\n4\n/vars\n/time +20m\n/quit\n");
    assert!(status.success());
    assert!(text.contains("bot: Ciao Ada!"), "{text}");
    assert!(text.contains("(pressed [Large (35 cm) · $14.50])"), "{text}");
    assert!(text.contains("size = \"large\""), "values as the language writes them: {text}");
    // The first message starts the conversation, as in `botc serve` and `botc test`: "hi" is
    // not taken as an answer to a question the user has not seen.
    let greeting = text.find("bot: Ciao Ada!").expect("greeted");
    assert!(text.find("you: hi").is_some_and(|hi| hi < greeting), "{text}");
    assert!(!text.contains("Please tap"), "{text}");
}

/// A hand-off that ends the flow says so, and `/handback` then says there is nothing to
/// hand back, instead of promising that it returns the conversation to the bot.
#[test]
fn chat_says_what_happens_after_a_hand_off_that_ends_the_flow() {
    let d = temp_dir("chathandoff");
    let flow = "flow: h\nstart: a\nnodes:\n  a:\n    say: Connecting you.\n    next: human\n  human:\n    handoff: support\n    reason: needs help\n";
    std::fs::write(d.join("h.yaml"), flow).expect("write");
    let (_, out) = chat(&[&d.join("h.yaml").to_string_lossy()], b"hi\n/handback\n");
    assert!(
        out.contains(
            "(handed to the `support` queue: needs help; the flow ends here, so the agent finishes the conversation)"
        ),
        "{out}"
    );
    assert!(!out.contains("/handback returns it"), "{out}");
    assert!(out.contains("(nothing to hand back: the conversation has ended"), "{out}");
}

#[test]
fn diff_reports_each_wait_point_as_json() {
    let d = temp_dir("diff");
    let v2 = FLOW.replace("  ask:\n", "  ask_number:\n").replace("start: ask\n", "start: ask_number\n");
    std::fs::write(d.join("v1.yaml"), FLOW).expect("write");
    std::fs::create_dir_all(d.join("new")).expect("dir");
    std::fs::write(d.join("new/v1.yaml"), v2).expect("write");
    for (src, out) in [("v1.yaml", "old"), ("new/v1.yaml", "new")] {
        let o = botc(&["compile", &d.join(src).to_string_lossy(), "-o", &d.join(out).to_string_lossy()]);
        assert_eq!(o.status.code(), Some(0));
    }
    let o = botc(&[
        "diff",
        &d.join("old/v1.botc").to_string_lossy(),
        &d.join("new/v1.botc").to_string_lossy(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let points = v["wait_points"].as_array().expect("list");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["node"], "ask");
    assert_eq!(points[0]["verdict"], "restart");
}

#[test]
fn chat_numbers_press_only_the_latest_buttons_and_test_vars_keep_their_text() {
    let d = temp_dir("chatbuttons");
    let flow = "flow: t\nstart: pick\nvars:\n  size: text\n  qty: integer\n  zip: text\nnodes:\n  pick:\n    ask: Size?\n    into: size\n    expect: { choice: [small, large] }\n    next: how_many\n  how_many:\n    ask: How many?\n    into: qty\n    expect: integer\n    next: ask_zip\n  ask_zip:\n    ask: ZIP?\n    into: zip\n    next: done\n  done:\n    end:\n";
    std::fs::write(d.join("t.yaml"), flow).expect("write");
    let (_, out) = chat(&[&d.join("t.yaml").to_string_lossy()], b"hi\n2\n2\n/vars\n");
    assert!(out.contains("qty = 2"), "2 answered How many?, it did not press an old button:\n{out}");
    assert!(out.contains("size = \"large\"") && out.contains("zip = (unset)"), "{out}");
    std::fs::write(
        d.join("t.test.yaml"),
        "flow: t.yaml\ntests:\n  - name: zip codes keep leading zeros\n    steps:\n      - user: hi\n      - button: small\n      - user: \"3\"\n      - user: \"01234\"\n        vars: { zip: 01234 }\n        ended: true\n",
    )
    .expect("write");
    let o = botc(&["test", &d.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn serve_logs_json_and_stops_cleanly_on_sigterm() {
    let (server, banner, _data) =
        start_serve(&["flows/examples", "--listen", "127.0.0.1:0", "--log-format", "json"], true);
    assert!(banner.contains("serving 4 bot(s) at http://127.0.0.1:"), "{banner}");
    let term = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().expect("kill runs");
    assert!(term.success());
    let out = server.wait_with_output().expect("exits");
    assert!(out.status.success(), "SIGTERM is a clean stop: {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 2, "{logs}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{l}");
    }
}

#[test]
fn load_sends_at_the_requested_rate_and_reports_latency() {
    // With the default per-client limits, 20 messages a second into each conversation are
    // mostly refused, and the report says why and what to change.
    let (mut server, banner, _data) = start_serve(&["flows/examples", "--listen", "127.0.0.1:0"], false);
    let url = banner_url(&banner).expect("url");
    let o = botc(&["load", &url, "--rate", "200", "--duration", "1", "--conversations", "10"]);
    let _ = server.kill();
    let _ = server.wait();
    let out = stdout(&o);
    assert!(
        out.contains("were 429: over the server's per-client limits") && out.contains("client_per_minute"),
        "{out}"
    );
    // Lifted, every one is taken.
    let config = tempfile::tempdir().expect("dir");
    let config = crate::unlimited_config(config.path());
    let (mut server, banner, _data) =
        start_serve(&["flows/examples", "--listen", "127.0.0.1:0", "--config", &config], false);
    let url = banner_url(&banner).expect("url");
    let o = botc(&["load", &url, "--rate", "200", "--duration", "1", "--conversations", "10"]);
    let _ = server.kill();
    let _ = server.wait();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("sent 200 in")
            && out.contains("accepted 200, refused 0 (503), errors 0, timed out 0")
            && out.contains("p99"),
        "{out}"
    );
    assert!(!out.contains("429"), "{out}");
}

/// A stand-in server for `botc load`: of the Telegram webhooks for bot `stall` the first is
/// never answered and the rest at once, `full` gets 503 with Retry-After, `broken` 503
/// without it.
fn load_target() -> (tokio::runtime::Runtime, String) {
    use axum::routing::post;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/webhooks/telegram/stall",
            post({
                let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                move || async move {
                    if !stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    "{}"
                }
            }),
        )
        .route(
            "/webhooks/telegram/full",
            post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "full") }),
        )
        .route("/webhooks/telegram/broken", post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }));
    rt.spawn(async move { axum::serve(listener, app).await });
    (rt, url)
}

#[test]
fn load_counts_waiting_for_a_busy_connection_in_the_latency() {
    // One connection, 100 requests offered over one second; the server holds the first
    // until the generator's two-second timeout gives up on it, so the other 99 are sent about
    // two seconds after their scheduled times and answered at once. A generator that measured
    // from the moment it sent (coordinated omission) would report them as instant.
    let (_rt, url) = load_target();
    let load = |bot: &str, connections: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_botc"));
        cmd.args([
            "load",
            &url,
            "--bot",
            bot,
            "--platform",
            "telegram",
            "--secret-env",
            "LOAD_SECRET",
            "--rate",
            "100",
            "--duration",
            "1",
            "--connections",
            connections,
            "--timeout",
            "2",
        ])
        .env("LOAD_SECRET", "s");
        let o = crate::output_within(&mut cmd, 60);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let ms = |out: &str, what: &str| -> f64 {
        let at = out.find(what).unwrap_or_else(|| panic!("no `{what}` in {out}")) + what.len();
        out[at..].trim_start().split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{out}"))
    };
    let out = load("stall", "1");
    assert!(out.contains("sent 100 in") && out.contains("accepted 99,") && out.contains("timed out 1,"), "{out}");
    assert!(ms(&out, "ack latency p50") > 400.0 && ms(&out, "max") > 800.0, "latency from the schedule: {out}");
    assert!(ms(&out, "sends late p99") > 800.0, "the sends fell behind their schedule: {out}");
    // Once the server answers every request at once, latency is the server's.
    let out = load("stall", "16");
    assert!(ms(&out, ", p99") < 400.0 && out.contains("accepted 100,"), "{out}");
    // A 503 with Retry-After is a refusal, the server's way to say it is full; one without
    // is an error, and the report says which.
    let out = load("full", "4");
    assert!(out.contains("accepted 0, refused 100 (503), errors 0"), "{out}");
    let out = load("broken", "4");
    assert!(out.contains("refused 0 (503), errors 100") && out.contains("503 without Retry-After: 100"), "{out}");
    // No server there: an error before the run, not a run of errors.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_botc"));
    cmd.args(["load", "http://127.0.0.1:1", "--platform", "telegram", "--secret-env", "LOAD_SECRET"])
        .args(["--rate", "10", "--duration", "1"])
        .env("LOAD_SECRET", "s");
    let o = crate::output_within(&mut cmd, 60);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cannot reach http://127.0.0.1:1"), "{err}");
}

#[test]
#[cfg(target_os = "linux")]
fn the_roles_behind_the_bus_run_at_a_lower_priority_than_the_gateway() {
    // In a spike the gateway (verify, append, acknowledge) must keep the CPU: the worker,
    // dispatcher, timers and history threads are niced, the gateway's are not.
    let (mut server, _banner, _data) = start_serve(&["flows/examples", "--listen", "127.0.0.1:0"], false);
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.id())).expect("its threads") {
        let stat = std::fs::read_to_string(task.expect("a thread").path().join("stat")).expect("stat");
        // `pid (name) state …`: the name may hold spaces; field 19, the nice value, is the
        // 17th after the name.
        let (name, rest) = stat.rsplit_once(") ").expect("a name in parentheses");
        let name = name.split_once(" (").expect("pid (name").1.to_string();
        let nice: i32 = rest.split(' ').nth(16).and_then(|n| n.parse().ok()).expect("a nice value");
        threads.push((name, nice));
    }
    let _ = server.kill();
    let _ = server.wait();
    // Relative to the gateway's, which is what botc was started with (a test run may be niced).
    let gateway: Vec<_> = threads.iter().filter(|(n, _)| n == "tokio-rt-worker").collect();
    let base = gateway.first().map(|(_, nice)| *nice).expect("gateway threads");
    assert!(gateway.iter().all(|(_, nice)| *nice == base), "{threads:?}");
    let behind: Vec<_> = threads.iter().filter(|(n, _)| n == "botc-behind-bus").collect();
    assert!(!behind.is_empty() && behind.iter().all(|(_, nice)| *nice == (base + 10).min(19)), "{threads:?}");
}

#[test]
fn serve_reads_bots_from_a_config_and_refuses_a_bad_one_before_binding() {
    let d = temp_dir("config");
    std::fs::write(d.join("t.yaml"), FLOW).expect("write");
    std::fs::write(
        d.join("bad.toml"),
        "listen = \"127.0.0.1:0\"\n\n[[bots]]\nid = \"t\"\nflow = \"t.yaml\"\nplatfrom = \"web\"\n",
    )
    .expect("write");
    let o = botc(&["serve", "--config", &d.join("bad.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:6:") && err.contains("unknown field `platfrom`"), "{err}");
    assert!(err.contains("did you mean `platform`?"), "{err}");
    // Every other mistake in one run, each with its line, and a misspelt flow file's
    // likely name.
    std::fs::write(
        d.join("many.toml"),
        "listen = \"127.0.0.1:0\"\n\n[limits]\nqueue_capacity = 0\nlease_seconds = 1\n\n[[bots]]\nid = \"t\"\nflow = \"tt.yaml\"\n",
    )
    .expect("write");
    let o = botc(&["serve", "--config", &d.join("many.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let order: Vec<usize> =
        ["many.toml:4:", "many.toml:5:", "many.toml:9:"].iter().filter_map(|w| err.find(w)).collect();
    assert!(order.len() == 3 && order.is_sorted(), "in the file's order: {err}");
    for want in [
        "many.toml:4: limits.queue_capacity must be at least 1",
        "many.toml:5: limits.lease_seconds must be between 2 and 300",
        "many.toml:9: bot `t`: flow file",
        "did you mean `t.yaml`?",
    ] {
        assert!(err.contains(want), "wanted `{want}` in: {err}");
    }
    std::fs::write(d.join("zero.toml"), "listen = \"127.0.0.1:0\"\n\n[limits]\nqueue_capacity = 0\n").expect("write");
    let o = botc(&["serve", "--config", &d.join("zero.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("zero.toml:4:") && err.contains("limits.queue_capacity must be at least 1"), "{err}");
    std::fs::write(d.join("star.toml"), "listen = \"127.0.0.1:0\"\n\n[web]\nallowed_origins = [\"*\"]\n")
        .expect("write");
    let o = botc(&["serve", "--config", &d.join("star.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("star.toml:4:") && err.contains("a wildcard would let every site's pages"), "{err}");
    std::fs::write(
        d.join("open.toml"),
        "[limits]\nclient_burst = 0\nstore_cache_mb = 1\n\n[web]\nclient_address_header = \"X Real IP\"\n",
    )
    .expect("write");
    let o = botc(&["serve", "--config", &d.join("open.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("open.toml:2: limits.client_burst must be at least 1"), "{err}");
    assert!(err.contains("open.toml:3: limits.store_cache_mb must be between 8 and 1048576"), "{err}");
    assert!(err.contains("open.toml:6: web.client_address_header: `X Real IP` is not a header name"), "{err}");
    std::fs::write(
        d.join("mock.toml"),
        "[[http_mocks]]\nrequest = \"FETCH api.example.com\"\n\n[[http_mocks]]\nrequest = \"GET https://a.example.com/x\"\nstatus = 42\n",
    )
    .expect("write");
    let o = botc(&["serve", "--config", &d.join("mock.toml").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mock.toml:2: http_mocks: `FETCH api.example.com` is not a request"), "{err}");
    assert!(err.contains("mock.toml:5: http_mocks: status 42 is not an HTTP status"), "{err}");

    std::fs::write(
        d.join("good.toml"),
        "listen = \"127.0.0.1:0\"\n\n[[bots]]\nid = \"doubler\"\nflow = \"t.yaml\"\nname = \"The Doubler\"\n",
    )
    .expect("write");
    let (mut server, banner, _data) = start_serve(&["--config", &d.join("good.toml").to_string_lossy()], false);
    let _ = server.kill();
    let _ = server.wait();
    assert!(banner.contains("serving 1 bot(s)"), "only the declared bot is served: {banner}");
}

#[test]
fn after_the_end_a_message_begins_again_in_botc_test_as_in_serve() {
    let d = temp_dir("after-end");
    let flow = "flow: t\nstart: hi\nnodes:\n  hi:\n    say: Hello\n    next: done\n  done:\n    end:\n";
    std::fs::write(d.join("t.yaml"), flow).expect("write");
    let test = "flow: t.yaml\ntests:\n  - name: twice\n    steps:\n      - user: hi\n        bot: [Hello]\n        ended: true\n      - user: again\n        bot: [Hello]\n        ended: true\n";
    std::fs::write(d.join("t.test.yaml"), test).expect("write");
    let o = botc(&["test", &d.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn quarantine_lists_nothing_in_a_fresh_data_dir_and_names_a_wrong_one() {
    let (mut server, _, data) = start_serve(&["flows/examples/pizza_order.yaml"], false);
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    server.wait().expect("stops");
    let o = botc(&["quarantine", "--data-dir", &data.path().to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).starts_with("no quarantined sessions in "), "{}", stdout(&o));
    let o = botc(&["quarantine", "--data-dir", "flows"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("flows holds no botc data (no botc.redb); give the --data-dir botc serve used"), "{err}");
}

/// The README's command serves the examples with their botc.toml, whose canned answers stand
/// in for the example APIs: a pizza ordered in the web chat is placed, with the order number
/// the mock gave, and nobody is handed to a person.
#[test]
fn served_examples_complete_their_happy_path_with_the_mocks_beside_them() {
    let (mut server, banner, _data) = start_serve(&["flows/examples", "--listen", "127.0.0.1:0"], false);
    let base = banner_url(&banner).expect("url");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = crate::client();
    let seen = rt.block_on(async {
        let chat = crate::start_chat_of(&client, &base, "pizza_order").await;
        let mut seen: Vec<serde_json::Value> = Vec::new();
        let steps = [
            ("text", "hi", "what size"),
            ("button", "large", "Which crust?"),
            ("text", "classic", "You have 0 so far"),
            ("button", "done", "How many pizzas"),
            ("text", "2", "Where should we deliver?"),
            ("text", "Via Roma 12, Milano", "phone number"),
            ("text", "+39 333 123 4567", "Shall I send it to the kitchen?"),
            ("button", "yes", "Order #1042 is in the oven"),
        ];
        for (kind, value, answer) in steps {
            let r = crate::send(&client, &base, &chat, serde_json::json!({ kind: value })).await.expect("answers");
            assert_eq!(r.status(), 202, "{kind} {value}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !seen.iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains(answer))) {
                assert!(std::time::Instant::now() < deadline, "no `{answer}` after {value}: {seen:#?}");
                let after = seen.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
                seen.extend(crate::transcript(&client, &base, &chat, &format!("after={after}&wait=5")).await);
            }
        }
        seen
    });
    let _ = server.kill();
    let _ = server.wait();
    let said: Vec<&str> = seen.iter().filter(|m| m["from"] != "user").filter_map(|m| m["text"].as_str()).collect();
    assert!(said.iter().all(|t| !t.contains("person") && !t.contains("Handed")), "{said:#?}");
}
