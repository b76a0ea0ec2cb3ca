//! The real binary with platform bots: credentials come from environment variables named in
//! botc.toml, mistakes are reported before anything binds (naming the variable, never the
//! value), and no secret ever reaches a log line, even when requests and sends fail.

use crate::{banner_url, root};
use botc_serve::fake::{FakePlatform, Tokens};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "987654:Secret-Bot-Token-Value";
const SECRET: &str = "Webhook_Secret_Value-123";

fn write_config(dir: &std::path::Path, api: &str, extra: &str) -> std::path::PathBuf {
    let flow = root().join("flows/examples/pizza_order.yaml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[platforms]\ntelegram_api = \"{api}\"\n\n[[bots]]\nid = \"pizza\"\nflow = \"{}\"\nplatform = \"telegram\"\ntoken_env = \"PIZZA_TG_TOKEN\"\nwebhook_secret_env = \"PIZZA_TG_SECRET\"\n{extra}",
        flow.display()
    );
    let path = dir.join("botc.toml");
    std::fs::write(&path, config).expect("write");
    path
}

fn serve_with(config: &std::path::Path, data: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_botc"));
    c.args(["serve", "--log-format", "json", "--config"]).arg(config).arg("--data-dir").arg(data);
    c.env_remove("PIZZA_TG_TOKEN").env_remove("PIZZA_TG_SECRET");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn credentials_are_checked_before_binding_and_named_not_shown() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PIZZA_TG_SECRET", SECRET)], "environment variable PIZZA_TG_TOKEN (token_env) is not set"),
        (&[("PIZZA_TG_TOKEN", TOKEN)], "environment variable PIZZA_TG_SECRET (webhook_secret_env) is not set"),
        (&[("PIZZA_TG_TOKEN", TOKEN), ("PIZZA_TG_SECRET", "   ")], "PIZZA_TG_SECRET (webhook_secret_env) is empty"),
        (
            &[("PIZZA_TG_TOKEN", TOKEN), ("PIZZA_TG_SECRET", "has spaces and $ymbols")],
            "not a valid Telegram secret_token: use 1-256 of A-Z, a-z, 0-9, _ and -",
        ),
    ];
    for (env, expected) in cases {
        let o = serve_with(&config, dir.path(), env).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("botc.toml:") && err.contains("bot `pizza`") && err.contains(expected), "{err}");
        assert!(!err.contains(TOKEN) && !err.contains("has spaces"), "a secret was printed: {err}");
        assert!(o.stdout.is_empty(), "nothing was served");
    }
    let wrong = write_config(dir.path(), "http://127.0.0.1:9", "signing_secret_env = \"X\"\n");
    let o = serve_with(&wrong, dir.path(), &[]).output().expect("runs");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("signing_secret_env does not apply to a Telegram bot; remove it")
    );
}

#[test]
fn a_telegram_bot_answers_through_the_api_and_no_secret_reaches_the_logs() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // The fake platform knows another token, so botc's sends are refused with 401: the
    // failure is logged, and the log must still not show the token.
    let fake = rt
        .block_on(FakePlatform::start(Tokens { telegram: "another:token".into(), ..Tokens::default() }))
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &fake.base, "");
    let mut server = serve_with(&config, dir.path(), &[("PIZZA_TG_TOKEN", TOKEN), ("PIZZA_TG_SECRET", SECRET)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let banner = crate::first_line(&mut server, "botc serve");
    let base = banner_url(&banner).expect("url");
    let client = crate::client();
    let update = r#"{"update_id":5,"message":{"message_id":1,"from":{"id":42,"first_name":"Ada"},"chat":{"id":42,"type":"private"},"text":"hi"}}"#;
    let post = |secret: &'static str| {
        let (client, url) = (client.clone(), format!("{base}/webhooks/telegram/pizza"));
        async move {
            client
                .post(url)
                .header("x-telegram-bot-api-secret-token", secret)
                .body(update)
                .send()
                .await
                .expect("post")
                .status()
        }
    };
    // Every log line, as botc writes it.
    let mut log = crate::Log::of(&mut server);
    assert_eq!(rt.block_on(post("wrong-secret")), 401);
    assert_eq!(rt.block_on(post(SECRET)), 200);
    // The send is refused by the platform (wrong token) and logged: wait for that line.
    let refused = rt.block_on(fake.wait_for_refusals(1, Duration::from_secs(10)));
    assert!(!refused.is_empty(), "botc called the platform");
    log.wait_for("refused a reply for good", 10);
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    server.wait().expect("exits");
    let logs = log.rest();
    assert!(logs.contains("webhook refused"), "{logs}");
    // Values in the words of the config, not Rust's names for them.
    assert!(logs.contains(r#""platform":"telegram","tenant":"-","plan":"free""#), "{logs}");
    assert!(
        !logs.contains(TOKEN) && !logs.contains("987654") && !logs.contains(SECRET),
        "a secret reached the logs:\n{logs}"
    );
}

#[test]
fn load_signs_telegram_updates_and_the_fake_platform_prints_the_replies() {
    use std::io::BufRead;
    /// Kills the process when the test ends, also when it fails.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut fake = Kill(
        Command::new(env!("CARGO_BIN_EXE_botc"))
            .args(["fake-platform", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("fake starts"),
    );
    let mut lines = std::io::BufReader::new(fake.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("banner").expect("line");
    let api = banner_url(&first).expect("the banner names the URL");
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &api, "");
    let mut server = Kill(
        serve_with(&config, dir.path(), &[("PIZZA_TG_TOKEN", TOKEN), ("PIZZA_TG_SECRET", SECRET)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    let banner = crate::first_line(&mut server.0, "botc serve");
    let base = banner_url(&banner).expect("url");
    let o = Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["load", &base, "--bot", "pizza", "--platform", "telegram", "--secret-env", "LOAD_SECRET"])
        .args(["--rate", "50", "--duration", "1", "--conversations", "5"])
        .env("LOAD_SECRET", SECRET)
        .output()
        .expect("load runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("sent 50 in") && out.contains("accepted 50, refused 0 (503), errors 0, timed out 0"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Five new conversations: each greeted by the pizza bot through sendMessage.
    let mut greeted = std::collections::HashSet::new();
    // Read on another thread, so a missing line fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        if v["path"] == "/botTOKEN/sendMessage"
            && v["body"]["text"].as_str().is_some_and(|t| t.starts_with("Ciao Load!"))
        {
            greeted.insert(v["body"]["chat_id"].to_string());
        }
        if greeted.len() == 5 {
            break;
        }
    }
    drop((server, fake));
    assert_eq!(greeted.len(), 5);
}
