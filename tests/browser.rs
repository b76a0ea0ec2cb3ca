//! The web chat in a real browser: headless Chromium, driven by playwright-core, chats with
//! `botc serve flows/examples`. `./scripts/test` installs Chromium and the driver first.

use crate::root;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_person_can_chat_with_an_example_bot_in_a_browser() {
    let chromium = std::env::var("BOTC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists() && root().join("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs Chromium ({chromium}) and tests/browser/node_modules; ./scripts/test installs both"
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["serve", "flows/examples", "--listen", "127.0.0.1:0"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("botc serve starts");
    let mut first = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut first).expect("banner");
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string);
    let result = url.as_ref().map(|u| {
        Command::new("node")
            .arg("tests/browser/chat.mjs")
            .arg(u)
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
