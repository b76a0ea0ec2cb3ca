//! `botc serve`: every role in one process on the embedded store.

use crate::flows::{collect, load_flow};
use crate::{EXIT_FINDINGS, config, fail};
use botc_serve as serve;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

/// Logs go to stderr; `RUST_LOG` filters them (default: info, without Postgres's notices
/// and the Redis client's own retry chatter, which repeats every second while a cluster
/// node is down: botc logs what matters of it itself).
pub(crate) fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn,redis=error".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The bots a process runs (declared in the config, then one per flow file found) and the
/// options the config sets, with the bus partitions and capacity for the embedded store.
pub(crate) fn bots_and_options(
    mut paths: Vec<PathBuf>,
    config: Option<&config::Config>,
) -> Result<(Vec<serve::Bot>, serve::Options, usize, usize), ExitCode> {
    let mut options = serve::Options::default();
    let (mut partitions, mut capacity) = (serve::DEFAULT_PARTITIONS, serve::DEFAULT_QUEUE_CAPACITY);
    let mut declared: Vec<&config::BotConfig> = Vec::new();
    if let Some(c) = &config {
        options.body_limit = c.limits.body_limit;
        options.forget_idle = (c.limits.forget_idle_days > 0)
            .then(|| std::time::Duration::from_secs(c.limits.forget_idle_days.saturating_mul(86_400)));
        options.lease_ttl = std::time::Duration::from_secs(c.limits.lease_seconds);
        options.environment.clone_from(&c.environment);
        options.allowed_origins.clone_from(&c.web.allowed_origins);
        options.admission = c.limits.admission();
        options.http_mocks.clone_from(&c.mocks);
        if !c.mocks.is_empty() {
            // Hosts only: a URL may carry an API key.
            let mut hosts: Vec<&str> = c.mocks.iter().filter_map(|m| m.url.split('/').nth(2)).collect();
            hosts.dedup();
            tracing::warn!(mocks = c.mocks.len(), hosts = %hosts.join(", "), "flows' http requests to these hosts are answered by [[http_mocks]] in botc.toml, never sent");
        }
        options.client_address_header.clone_from(&c.web.client_address_header);
        options.http = serve::transport::Limits {
            header_read: std::time::Duration::from_secs(c.limits.header_read_seconds),
            max_connections: c.limits.max_connections,
        };
        capacity = c.limits.queue_capacity;
        partitions = c.limits.partitions;
        let apis = &c.platforms;
        for (base, set) in [
            (&apis.discord_api, &mut options.api.discord),
            (&apis.slack_api, &mut options.api.slack),
            (&apis.telegram_api, &mut options.api.telegram),
        ] {
            if let Some(b) = base {
                *set = b.trim_end_matches('/').to_string();
            }
        }
        declared = c.bots.iter().collect();
        for b in &c.bots {
            let plan = match b.plan {
                config::Plan::Free => "free",
                config::Plan::Premium => "premium",
            };
            tracing::info!(bot = %b.id, platform = b.platform.name(), tenant = b.tenant.as_deref().unwrap_or("-"), plan, "bot declared");
        }
    }
    if paths.is_empty() && declared.is_empty() {
        paths.push(PathBuf::from("flows/examples"));
    }
    let files = if paths.is_empty() {
        Vec::new()
    } else {
        match collect(&paths) {
            Ok(f) if !f.is_empty() => f,
            Ok(_) => return Err(fail("no flow files (.yaml, .yml, .flow) found")),
            Err(e) => return Err(fail(e)),
        }
    };
    // Every flow found becomes a bot named after its file; a flow's YAML and DSL twins are
    // one bot. Bots declared in the config come first, with their own ids and names.
    let mut bots: Vec<serve::Bot> = Vec::new();
    for b in &declared {
        let program = match load_flow(&b.flow) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: bot `{}`: {e}; nothing was started", b.id);
                return Err(ExitCode::from(EXIT_FINDINGS));
            }
        };
        let name = b.name.clone().unwrap_or_else(|| program.program().name.replace('_', " "));
        let platform = b.platform;
        let (mut per_bot, mut per_conversation) = platform.limits();
        let plans = &config.map(|c| (c.plans.free, c.plans.premium));
        let plan = match (b.plan, plans) {
            (config::Plan::Free, Some((free, _))) => free.messages_per_second,
            (config::Plan::Premium, Some((_, premium))) => premium.messages_per_second,
            _ => None,
        };
        if platform != serve::Platform::Web {
            // The bot's own figure replaces the platform's (a platform may grant more); the
            // plan's caps it.
            if let Some(n) = b.messages_per_second {
                per_bot = botc_runtime::platforms::limiter::Limit::per_second(n);
            }
            if let Some(cap) = plan
                && cap < per_bot.rate
            {
                per_bot = botc_runtime::platforms::limiter::Limit::per_second(cap);
            }
            if let Some(n) = b.conversation_messages_per_second {
                per_conversation = botc_runtime::platforms::limiter::Limit::per_second(n);
            }
        }
        let mut bot = serve::Bot::web(&b.id, &name, std::sync::Arc::new(program));
        bot.platform = platform;
        bot.secrets = b.secrets.clone();
        bot.per_bot = per_bot;
        bot.per_conversation = per_conversation;
        bots.push(bot);
    }
    for path in &files {
        let program = match load_flow(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}; nothing was started");
                return Err(ExitCode::from(EXIT_FINDINGS));
            }
        };
        let id = path.file_stem().map_or("bot".into(), |s| s.to_string_lossy().into_owned());
        if let Some(other) = bots.iter().find(|b| b.id == id) {
            if other.program.program().hash != program.program().hash {
                return Err(fail(format!("two different flows are both named `{id}`; rename one of the files")));
            }
            continue;
        }
        let name = program.program().name.replace('_', " ");
        bots.push(serve::Bot::web(&id, &name, std::sync::Arc::new(program)));
    }
    Ok((bots, options, partitions, capacity))
}

/// The `botc.toml` in a flow directory being served (the examples' one answers their http
/// requests), when exactly one has one; several is an error that says to choose.
fn settings_beside(paths: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    let default = [PathBuf::from("flows/examples")];
    let dirs = if paths.is_empty() { &default[..] } else { paths };
    let found: Vec<PathBuf> = dirs.iter().map(|d| d.join("botc.toml")).filter(|f| f.is_file()).collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => {
            let list: Vec<String> = many.iter().map(|f| f.display().to_string()).collect();
            Err(format!("several flow directories have a botc.toml ({}); choose one with --config", list.join(", ")))
        }
    }
}

pub(crate) fn serve_cmd(
    paths: Vec<PathBuf>,
    config: Option<&Path>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
    environment: Option<String>,
    new_store: bool,
) -> ExitCode {
    // Everything is read and checked before anything binds.
    let found = match config {
        Some(_) => None,
        None => match settings_beside(&paths) {
            Ok(found) => found,
            Err(e) => return fail(e),
        },
    };
    if let Some(f) = &found {
        tracing::info!(config = %f.display(), "settings from the flow directory's botc.toml (--config chooses another)");
    }
    let config = match config.or(found.as_deref()).map(config::load).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (bots, mut options, partitions, capacity) = match bots_and_options(paths, config.as_ref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    if let Err(e) = follow(&mut options, environment) {
        return fail(e);
    }
    let listen = listen.or(config.as_ref().and_then(|c| c.listen)).unwrap_or(([127, 0, 0, 1], 8080).into());
    options.operators = operators(config.as_ref(), listen);
    let data_dir =
        data_dir.or(config.as_ref().and_then(|c| c.data_dir.clone())).unwrap_or_else(|| PathBuf::from("botc-data"));
    let cache = config.as_ref().map_or(serve::DEFAULT_CACHE_BYTES, |c| c.limits.store_cache_mb * 1024 * 1024);
    let store = match serve::Embedded::open_sized(&data_dir, partitions, capacity, cache) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let background = match behind_the_bus() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    options.background = Some(background.handle().clone());
    runtime.block_on(async move {
        let history = match serve::SqliteHistory::open(&serve::history_path(&data_dir)).await {
            Ok(h) => std::sync::Arc::new(h),
            Err(e) => return fail(e),
        };
        if let Err(e) = serve::pair(&store, &history, &data_dir, new_store).await {
            return fail(e);
        }
        let (listener, shutdown) = match listen_until_signalled(listen).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let metrics_listener = match super::serve::metrics_listener(config.as_ref()).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let addr = listener.local_addr().map_or(listen.to_string(), |a| a.to_string());
        outln!(
            "botc is serving {} bot(s) at http://{addr}/  (Ctrl-C stops it; conversations are kept in {})",
            bots.len(),
            data_dir.display()
        );
        tracing::info!(address = %addr, bots = bots.len(), data = %store.path().display(), "serving");
        let clock = std::sync::Arc::new(botc_runtime::clock::SystemClock::default());
        let ports = serve::Ports::embedded(store.clone(), history.clone(), clock);
        let listeners = serve::Listeners { main: listener, metrics: metrics_listener };
        let result = serve::serve_with(listeners, bots, options, ports, shutdown).await;
        store.close();
        history.close().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("server error: {e}")),
        }
    })
}

/// The runtime for the roles behind the bus (worker, dispatcher, timers, history): its
/// threads run at a lower scheduling priority (nice +10) than the gateway's. While the CPU
/// is not full this changes nothing; in a spike, accepting events (verify, append,
/// acknowledge) keeps the CPU, the bus takes up the burst, and when it is full the gateway
/// answers 503 with Retry-After at once instead of letting every acknowledgement wait
/// behind the steps. In the distributed runtime these roles are separate processes.
fn behind_the_bus() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("botc-behind-bus")
        .on_thread_start(|| {
            // Linux gives each thread its own nice value; PRIO_PROCESS with a thread id sets
            // this thread's, relative to what botc was started with. Best effort: where it is
            // refused, the thread keeps the process's priority, as before. (Elsewhere the
            // roles run at the gateway's priority.)
            #[cfg(target_os = "linux")]
            {
                let me = Some(rustix::thread::gettid());
                let now = rustix::process::getpriority_process(me).unwrap_or(0);
                let _ = rustix::process::setpriority_process(me, (now + BEHIND_THE_BUS_NICE).min(19));
            }
        })
        .enable_all()
        .build()
}

/// How much nicer the threads behind the bus are than the gateway's: a weight of 110 against
/// 1024 in Linux's scheduler when both want the CPU.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const BEHIND_THE_BUS_NICE: i32 = 10;

/// Who may do what operators do: with a token configured, those who present it; without
/// one, anyone on a loopback address (a laptop) and nobody on any other.
pub(crate) fn operators(config: Option<&config::Config>, listen: std::net::SocketAddr) -> serve::Operators {
    match config.and_then(|c| c.admin.token.clone()) {
        Some(token) => serve::Operators::Token(token),
        None if listen.ip().is_loopback() => serve::Operators::Open,
        None => {
            tracing::warn!(address = %listen, "no operator token ([admin] token_env): hand-back and waiting counts are off on this public address");
            serve::Operators::Closed
        }
    }
}

/// The registry environment to follow: the command line's, else the config's (already in
/// `options`), else none.
pub(crate) fn follow(options: &mut serve::Options, flag: Option<String>) -> Result<(), String> {
    if let Some(env) = flag {
        config::check_environment(&env)?;
        options.environment = Some(env);
    }
    Ok(())
}

/// Binds the config's `[admin] metrics_listen`, if any.
pub(crate) async fn metrics_listener(
    config: Option<&config::Config>,
) -> Result<Option<tokio::net::TcpListener>, String> {
    match config.and_then(|c| c.admin.metrics_listen) {
        None => Ok(None),
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("cannot listen on {addr} for /metrics ([admin] metrics_listen): {e}")),
    }
}

/// Binds `listen` and installs the SIGTERM/SIGINT handlers, before the caller prints that it
/// is up (a supervisor may send SIGTERM as soon as it sees that, and that must drain, not
/// kill): the listener, and a future that completes at the first signal.
pub(crate) async fn listen_until_signalled(
    listen: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, impl std::future::Future<Output = ()> + Send + 'static), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e} (is another botc running? try --listen 127.0.0.1:0)"))?;
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => return Err(format!("cannot handle signals: {e}")),
    };
    let shutdown = async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: finishing requests in flight");
    };
    Ok((listener, shutdown))
}
