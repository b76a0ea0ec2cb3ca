//! `botc fake-platform`: the stand-in for the platforms' APIs, printing each call it gets.

use crate::{fail, with_runtime};
use botc_serve::fake::{FakePlatform, Tokens};
use std::process::ExitCode;

/// Serves the fake at `listen` until interrupted, printing each call as a JSON line.
pub(crate) fn fake_platform_cmd(listen: std::net::SocketAddr) -> ExitCode {
    with_runtime(async move {
        let fake = match FakePlatform::start_at(listen, Tokens::default()).await {
            Ok(f) => f,
            Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
        };
        outln!("fake platform APIs at {} (Ctrl-C stops it)", fake.base);
        loop {
            // Wakes when calls have been answered; prints them and forgets them, so memory
            // and the work per call stay flat however many calls come.
            for r in fake.take().await {
                let line = serde_json::json!({
                    "at_ms": r.at.as_secs_f64() * 1e3, "method": r.method, "path": r.path, "body": r.body,
                });
                outln!("{line}");
            }
        }
    })
}
