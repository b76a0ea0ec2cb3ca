//! The web chat in a real browser: headless Chromium, driven by playwright-core, chats with
//! `botc serve flows/examples`. `./scripts/test` installs Chromium and the driver first.

use crate::{banner_url, root, start_serve};
use std::process::Command;

/// Serves the examples with `extra` arguments, runs `node tests/browser/SCRIPT URL ARGS…`
/// against the printed URL, and requires it to succeed.
fn drive(script: &str, extra: &[&str], args: &[String]) {
    let chromium = std::env::var("BOTC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists() && root().join("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs Chromium ({chromium}) and tests/browser/node_modules; ./scripts/test installs both"
    );
    let (mut server, first, _data) =
        start_serve(&[&["flows/examples", "--listen", "127.0.0.1:0"], extra].concat(), false);
    let url = banner_url(&first);
    let result = url.as_ref().map(|u| {
        Command::new("node")
            .arg(format!("tests/browser/{script}"))
            .arg(u)
            .args(args)
            .current_dir(root())
            .env("BOTC_CHROMIUM", &chromium)
            .output()
            .expect("node runs")
    });
    let _ = server.kill();
    let _ = server.wait();
    let out = result.unwrap_or_else(|| panic!("botc serve printed no URL: {first:?}"));
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_person_can_chat_with_an_example_bot_in_a_browser() {
    drive("chat.mjs", &[], &[]);
}

/// The chat widget on another site: a page from another origin includes `widget.js` and
/// chats through botc's API across origins, as `[web] allowed_origins` allows; a site not
/// listed is refused and the widget says so.
#[test]
fn the_chat_widget_works_on_a_listed_site_and_is_refused_on_another() {
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let (allowed, other) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("botc.toml");
    std::fs::write(&config, format!("[web]\nallowed_origins = [\"http://127.0.0.1:{allowed}\"]\n")).expect("write");
    drive("widget.mjs", &["--config", &config.to_string_lossy()], &[allowed.to_string(), other.to_string()]);
}
