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
        let mut seen = 0;
        loop {
            // Wakes when a call has been answered.
            fake.wait_for(seen + 1, std::time::Duration::from_secs(3600)).await;
            for r in fake.received_from(seen) {
                seen += 1;
                let line = serde_json::json!({
                    "at_ms": r.at.as_secs_f64() * 1e3, "method": r.method, "path": r.path, "body": r.body,
                });
                outln!("{line}");
            }
        }
    })
}
