//! `botc load` and its baseline server: a fixed-rate load generator for benchmarks.

use crate::{fail, load, with_runtime};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LoadPlatform {
    Web,
    Telegram,
    Slack,
}

/// Offers `rate` requests a second for `duration` seconds to the server at `url`.
pub(crate) fn load_cmd(
    url: &str,
    bot: &str,
    opts: load::Options,
    platform: LoadPlatform,
    secret_env: Option<String>,
) -> ExitCode {
    let secret = match (&platform, secret_env) {
        (LoadPlatform::Web, _) => String::new(),
        (_, Some(var)) => match std::env::var(&var) {
            Ok(s) => s,
            Err(_) => return fail(format!("environment variable {var} (--secret-env) is not set")),
        },
        (_, None) => return fail("signed webhooks need --secret-env NAME"),
    };
    let target = match platform {
        LoadPlatform::Web => load::Target::Web,
        LoadPlatform::Telegram => load::Target::Telegram { secret },
        LoadPlatform::Slack => load::Target::Slack { secret },
    };
    with_runtime(async move {
        match load::run(url.trim_end_matches('/'), bot, target, opts).await {
            Ok(report) => {
                outln!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        }
    })
}

/// Serves the baseline for `botc load`: a server that only acknowledges.
pub(crate) fn baseline_cmd(listen: std::net::SocketAddr) -> ExitCode {
    with_runtime(async move {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => {
                outln!("baseline listening at http://{}/", l.local_addr().map_or(listen, |a| a));
                match load::baseline(l).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            Err(e) => fail(format!("cannot listen on {listen}: {e}")),
        }
    })
}
