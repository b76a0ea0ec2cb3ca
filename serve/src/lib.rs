//! `botc serve`: every role in one process. The web-chat channel is built in, so a person
//! can talk to the bots in a browser.
//!
//! The data path is the one DESIGN.md draws: the HTTP handler (gateway) only validates,
//! publishes to the bus and acknowledges once the event is durable; a worker per bus
//! partition runs the VM and commits each batch's effects (sessions, replies, timers, outbox)
//! at once; the timer scheduler and the outbox runner turn due timers and finished http
//! requests back into events. The roles talk to storage only through the [`ports`]; here
//! every port is the embedded redb store ([`Embedded`]).

mod admission;
mod bots;
pub mod contract;
mod datafile;
mod dispatch;
mod embedded;
mod event;
pub mod fake;
mod history;
mod http;
mod metrics;
pub mod ports;
pub mod records;
mod roles;
pub mod supervise;
mod transcript;
pub mod transport;
mod webhook;
mod worker;

pub use admission::AdmissionLimits;
pub use bots::{Bots, Catalog};
pub use dispatch::{Dispatcher, HttpClient};
pub use embedded::{DEFAULT_CACHE_BYTES, Embedded, OpenError, partition_of};
pub use event::{EVENT_VERSION, Event};
/// The flow registry's rows, read the same way from SQLite and Postgres.
pub mod registry_rows {
    pub use super::history::{DEPLOY_COLUMNS, VERSION_COLUMNS, deploy_row, version_row};
}
pub use history::{SqliteHistory, buttons_json, direction_name, hex, history_path, record_from_columns, unhex};
pub use http::{CONVERSATION_KEY, Gateway, Ops, check_origin, random_secret};
pub use metrics::Metrics;
pub use roles::{HistoryShipper, HttpMock, OutboxRunner, Scheduler};
pub use transcript::{Entry, From};
pub use worker::{Core, Worker};

use botc_runtime::clock::Clock;
pub use botc_runtime::platforms::Platform;
use botc_runtime::platforms::limiter::Limit;
use botc_runtime::vm::Loaded;
use std::sync::Arc;

/// A bot: a flow made reachable on one platform.
#[derive(Clone)]
pub struct Bot {
    pub id: String,
    pub name: String,
    pub program: Arc<Loaded>,
    pub platform: Platform,
    pub secrets: Secrets,
    /// Send budgets: the whole bot, and one conversation.
    pub per_bot: Limit,
    pub per_conversation: Limit,
}

impl Bot {
    /// A web-chat bot (no secrets, no send limits).
    pub fn web(id: &str, name: &str, program: Arc<Loaded>) -> Bot {
        Bot {
            id: id.into(),
            name: name.into(),
            program,
            platform: Platform::Web,
            secrets: Secrets::default(),
            per_bot: Limit::per_second(1000),
            per_conversation: Limit::per_second(1000),
        }
    }
}

/// A secret value (token, signing secret): never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a bot needs to prove requests are its platform's and to call its API.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// Bot token (Discord, Telegram) or bot user OAuth token (Slack).
    pub token: Option<Secret>,
    /// Discord: the application's public key.
    pub discord_key: Option<botc_runtime::platforms::verify::DiscordKey>,
    /// Slack: the signing secret.
    pub signing_secret: Option<Secret>,
    /// Telegram: the `secret_token` given to setWebhook.
    pub webhook_secret: Option<Secret>,
}

/// Where each platform's API is (tests point these at a fake server on loopback).
#[derive(Clone, Debug)]
pub struct ApiBases {
    pub discord: String,
    pub slack: String,
    pub telegram: String,
}

impl Default for ApiBases {
    fn default() -> Self {
        ApiBases {
            discord: "https://discord.com/api/v10".into(),
            slack: "https://slack.com/api".into(),
            telegram: "https://api.telegram.org".into(),
        }
    }
}

/// Tunables, with defaults fit for one machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest request body the gateway accepts.
    pub body_limit: usize,
    pub api: ApiBases,
    /// Conversations no event reached for this long are forgotten (session, transcript,
    /// timers; their history stays). `None` keeps them forever.
    pub forget_idle: Option<std::time::Duration>,
    /// The roles this process runs.
    pub roles: Vec<Role>,
    /// How long a lease on work lasts unrenewed (see [`supervise::LEASE_TTL`]).
    pub lease_ttl: std::time::Duration,
    /// The registry environment whose flow versions this process serves and follows (hot
    /// reload); `None` serves the flows it was given.
    pub environment: Option<String>,
    /// Who may do what operators and agents do over HTTP (hand a conversation back, count
    /// the conversations waiting at each node).
    pub operators: Operators,
    /// How long a request's head may take and how many connections may be open.
    pub http: transport::Limits,
    /// Other sites whose pages may use the web chat's API from the browser (`[web]
    /// allowed_origins`); the server's own pages always may.
    pub allowed_origins: Vec<String>,
    /// What one web client may do (per address, per conversation).
    pub admission: AdmissionLimits,
    /// The header a trusted proxy in front puts the client's address in (`[web]
    /// client_address_header`); `None`: the connection's peer is the client.
    pub client_address_header: Option<String>,
    /// Canned answers for flows' http requests (`[[http_mocks]]`).
    pub http_mocks: Vec<HttpMock>,
    /// Where the roles behind the bus run (worker, scheduler, outbox, history, dispatcher):
    /// `botc serve` gives them a runtime of lower-priority threads, so that in a spike
    /// accepting (verify, append, acknowledge) keeps the CPU and the bus absorbs the burst.
    /// `None`: the runtime `serve_with` runs on.
    pub background: Option<tokio::runtime::Handle>,
}

/// Access to the gateway's operator actions: hand-back (a human agent's) and the flow
/// view's counts of waiting conversations.
#[derive(Clone, Debug)]
pub enum Operators {
    /// Anyone who reaches the gateway (botc serve on a loopback address).
    Open,
    /// Requests with `Authorization: Bearer TOKEN`.
    Token(Secret),
    /// Nobody: refused with 403 and what to configure (a public address with no token set).
    Closed,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: 1024 * 1024,
            api: ApiBases::default(),
            forget_idle: Some(std::time::Duration::from_secs(30 * 86_400)),
            roles: Role::ALL.to_vec(),
            lease_ttl: supervise::LEASE_TTL,
            environment: None,
            // The caller decides; botc's own commands open it only on a loopback address.
            operators: Operators::Open,
            http: transport::Limits::default(),
            allowed_origins: Vec::new(),
            admission: AdmissionLimits::default(),
            client_address_header: None,
            http_mocks: Vec::new(),
            background: None,
        }
    }
}

/// The parts of botc that run as separate tasks (one process runs any set of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The web chat API and the platform webhooks: verify, publish, acknowledge.
    Gateway,
    /// One per bus partition: step the VM over events and commit their effects.
    Worker,
    /// Deliver platform replies within the send budgets.
    Dispatcher,
    /// Due timers onto the bus; forget idle conversations.
    Scheduler,
    /// Flows' http requests.
    Outbox,
    /// Committed history into the history database.
    History,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Gateway, Role::Worker, Role::Dispatcher, Role::Scheduler, Role::Outbox, Role::History];
}

/// Bus partitions and capacity per partition, when nothing else is configured.
pub const DEFAULT_PARTITIONS: usize = 4;
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// The outside world, one trait object per port, as the composition root receives it; each
/// role is given only the ports it uses.
#[derive(Clone)]
pub struct Ports {
    pub leases: Arc<dyn ports::Leases>,
    pub bus: Arc<dyn ports::Bus>,
    pub sessions: Arc<dyn ports::SessionStore>,
    pub committer: Arc<dyn ports::Committer>,
    pub timers: Arc<dyn ports::TimerStore>,
    pub transcript: Arc<dyn ports::Transcript>,
    pub outbox: Arc<dyn ports::Outbox>,
    pub history_queue: Arc<dyn ports::HistoryQueue>,
    pub history: Arc<dyn ports::HistorySink>,
    pub flows: Arc<dyn ports::FlowRegistry>,
    pub replies: Arc<dyn ports::ReplyQueue>,
    pub limiter: Arc<dyn ports::RateLimiter>,
    pub client: Arc<dyn ports::PlatformClient>,
    /// The time of day, monotonic time and sleeping.
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// One machine: everything in the data directory, in redb and SQLite.
    pub fn embedded(store: Arc<Embedded>, history: Arc<SqliteHistory>, clock: Arc<dyn Clock>) -> Ports {
        let limiter = Arc::new(botc_runtime::platforms::limiter::Gcra::new(clock.clone()));
        Ports::of(store, history, limiter, clock)
    }

    /// Every data port from one store (one that passes the [`contract`]), history and the
    /// flow registry from another, send budgets from `limiter`, platform calls over HTTP.
    pub fn of<S, H>(
        store: Arc<S>,
        history: Arc<H>,
        limiter: Arc<dyn ports::RateLimiter>,
        clock: Arc<dyn Clock>,
    ) -> Ports
    where
        S: contract::Store + 'static,
        H: ports::HistorySink + ports::FlowRegistry + 'static,
    {
        Ports {
            leases: store.clone(),
            bus: store.clone(),
            sessions: store.clone(),
            committer: store.clone(),
            timers: store.clone(),
            transcript: store.clone(),
            outbox: store.clone(),
            history_queue: store.clone(),
            replies: store,
            history: history.clone(),
            flows: history,
            limiter,
            client: Arc::new(dispatch::HttpClient::default()),
            clock,
        }
    }
}

/// Checks that a data directory's two files belong together: history.sqlite records the
/// identity of the botc.redb it was written beside. A botc.redb deleted, emptied or swapped
/// under an existing history would otherwise start silently empty while history.sqlite still
/// holds the old conversations. `adopt` (`--new-store`) accepts the new store.
pub async fn pair(store: &Embedded, history: &SqliteHistory, dir: &std::path::Path, adopt: bool) -> Result<(), String> {
    use ports::FlowRegistry;
    const NAME: &str = "botc.redb identity";
    let (id, made_now) = store.identity();
    let mut ours = [0u8; 32];
    ours[..8].copy_from_slice(&id.to_le_bytes());
    let shown = dir.display();
    let kept =
        history.secret(NAME.into(), ours).await.map_err(|e| format!("cannot read {shown}/history.sqlite: {e}"))?;
    if kept == ours {
        return Ok(());
    }
    if adopt {
        history.replace_secret(NAME, ours).await.map_err(|e| format!("cannot write {shown}/history.sqlite: {e}"))?;
        tracing::warn!(data = %shown, "a new botc.redb beside an earlier history.sqlite, as --new-store allows: conversations start over, history is kept");
        return Ok(());
    }
    Err(if made_now {
        format!(
            "{shown}/botc.redb is new (or was emptied), but {shown}/history.sqlite was written beside another one: \
             the conversations it records are not in this botc.redb. If botc.redb was deleted or replaced by \
             mistake, stop and put it back; to go on with no conversations (the history is kept), start once \
             with --new-store"
        )
    } else {
        format!(
            "{shown}/botc.redb and {shown}/history.sqlite come from different data directories; put back the \
             pair that belongs together, or start once with --new-store to keep this botc.redb with this history"
        )
    })
}

/// How long to wait before the `attempt`th retry (1, 2, …) of anything that failed: 0.5 s,
/// 1 s, 2 s … up to a minute, each ±50% at random so retries from many places do not bunch
/// up. The one retry policy of every role.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = std::time::Duration::from_millis(500)
        .saturating_mul(1 << attempt.saturating_sub(1).min(7))
        .min(std::time::Duration::from_secs(60));
    base.mul_f64(0.5 + fastrand::f64())
}

/// The composition root: builds each role in `options.roles` from only the ports it uses,
/// runs each under a supervisor, and serves HTTP (the gateway's routes when it runs, and
/// `/healthz`, `/readyz`, `/metrics` always) until `shutdown` completes. Then it stops
/// accepting requests, lets every worker finish the batch it is on, ships what history it
/// can within five seconds, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bots: Vec<Bot>,
    options: Options,
    ports: Ports,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(Listeners { main: listener, metrics: None }, bots, options, ports, shutdown).await
}

/// Where a process serves HTTP.
pub struct Listeners {
    /// The gateway's routes (when it runs), `/healthz` and `/readyz`, and `/metrics` unless
    /// `metrics` is given.
    pub main: tokio::net::TcpListener,
    /// `/metrics` (and `/healthz`, `/readyz`) on an address of its own, usually inside the
    /// network only, as Prometheus practice has it.
    pub metrics: Option<tokio::net::TcpListener>,
}

/// [`serve`], with `/metrics` on a listener of its own when `listeners.metrics` is given.
pub async fn serve_with(
    listeners: Listeners,
    bots: Vec<Bot>,
    options: Options,
    ports: Ports,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners { main: listener, metrics: metrics_listener } = listeners;
    use ports::Work;
    use supervise::{Health, Holding, OnStop, Supervision, supervise};
    let runs = |r: Role| options.roles.contains(&r);
    let behind = options.background.clone().unwrap_or_else(tokio::runtime::Handle::current);
    let clock = ports.clock.clone();
    // This process among the holders of leases: unique per start, so a process restarted
    // on the same host is a new holder.
    let holding = Holding {
        leases: ports.leases.clone(),
        holder: format!("{}:{:016x}", std::process::id(), fastrand::u64(..)).into(),
        clock: clock.clone(),
        ttl: options.lease_ttl,
    };
    let bots = Arc::new(Bots::new(bots));
    bots.remember_versions(&*ports.flows, options.environment.as_deref(), clock.unix()).await;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let supervision =
        Supervision { health: health.clone(), metrics: metrics.clone(), clock: clock.clone(), stop: stopped };
    let mut finishing = Vec::new();
    let mut aborting = Vec::new();
    if let Some(env) = &options.environment {
        // The environment's versions before anything is served; the watch goes on from the
        // deploy read here (read first, so one made meanwhile is not missed).
        let seen = match ports.flows.last_deploy().await {
            Ok(seq) => bots.follow(&*ports.flows, env).await.map(|_| Some(seq)),
            Err(e) => Err(e),
        };
        let seen = seen.unwrap_or_else(|e| {
            tracing::error!(environment = %env, error = %e, "cannot load the environment's flow versions; serving the flow files until it can");
            None
        });
        let watch = bots::watch(
            bots.clone(),
            ports.flows.clone(),
            env.clone(),
            seen,
            clock.clone(),
            metrics.clone(),
            supervision.stop.clone(),
        );
        aborting.push(tokio::spawn(watch));
    }
    if runs(Role::Worker) {
        let worker = Arc::new(Worker {
            core: Core { bots: bots.clone(), metrics: metrics.clone(), clock: clock.clone() },
            bus: ports.bus.clone(),
            sessions: ports.sessions.clone(),
            committer: ports.committer.clone(),
            flows: ports.flows.clone(),
            environment: options.environment.clone(),
        });
        // The partitions are shared fairly among the worker processes.
        let share = supervise::Share::new("workers", ports.bus.partitions());
        aborting.push(behind.spawn({
            let (h, share, stop) = (holding.clone(), share.clone(), supervision.stop.clone());
            async move { h.count_in(share, stop).await }
        }));
        for p in 0..ports.bus.partitions() {
            let (w, h, stop, share) = (worker.clone(), holding.clone(), supervision.stop.clone(), share.clone());
            let start = move || {
                let (w, h, stop, share) = (w.clone(), h.clone(), stop.clone(), share.clone());
                async move {
                    h.hold(Work::Partition(p), Some(&share), stop.clone(), |lease| w.clone().run(lease, stop.clone()))
                        .await
                }
            };
            finishing.push(behind.spawn(supervise(format!("worker {p}"), OnStop::Finish, supervision.clone(), start)));
        }
    }
    if runs(Role::Scheduler) {
        let scheduler = Arc::new(Scheduler {
            timers: ports.timers.clone(),
            sessions: ports.sessions.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            forget_idle: options.forget_idle,
        });
        let (h, stop) = (holding.clone(), supervision.stop.clone());
        let start = move || {
            let (s, h, stop) = (scheduler.clone(), h.clone(), stop.clone());
            async move { h.hold(Work::Timers, None, stop, |lease| s.clone().run(lease)).await }
        };
        aborting.push(behind.spawn(supervise("scheduler".into(), OnStop::Abort, supervision.clone(), start)));
    }
    if runs(Role::Outbox) {
        let runner = Arc::new(OutboxRunner {
            outbox: ports.outbox.clone(),
            clock: clock.clone(),
            client: reqwest::Client::new(),
            mocks: options.http_mocks.clone().into(),
        });
        let (h, stop) = (holding.clone(), supervision.stop.clone());
        let start = move || {
            let (r, h, stop) = (runner.clone(), h.clone(), stop.clone());
            async move { h.hold(Work::Outbox, None, stop, |lease| r.clone().run(lease)).await }
        };
        aborting.push(behind.spawn(supervise("outbox".into(), OnStop::Abort, supervision.clone(), start)));
    }
    let shipper = Arc::new(HistoryShipper {
        queue: ports.history_queue.clone(),
        sink: ports.history.clone(),
        clock: clock.clone(),
    });
    if runs(Role::History) {
        let s = shipper.clone();
        let start = move || s.clone().run();
        aborting.push(behind.spawn(supervise("history".into(), OnStop::Abort, supervision.clone(), start)));
    }
    if runs(Role::Dispatcher) {
        let dispatcher = Arc::new(Dispatcher {
            bots: bots.clone(),
            replies: ports.replies.clone(),
            limiter: ports.limiter.clone(),
            client: ports.client.clone(),
            api: options.api.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        });
        for b in bots.list().iter().filter(|b| b.platform != Platform::Web) {
            let (d, h, stop, id) = (dispatcher.clone(), holding.clone(), supervision.stop.clone(), b.id.clone());
            let start = move || {
                let (d, h, stop, work) = (d.clone(), h.clone(), stop.clone(), Work::Replies(id.clone()));
                async move { h.hold(work, None, stop, |lease| d.clone().run(lease)).await }
            };
            aborting.push(behind.spawn(supervise(
                format!("dispatcher {}", b.id),
                OnStop::Abort,
                supervision.clone(),
                start,
            )));
        }
    }
    let ops = Arc::new(Ops {
        metrics: metrics.clone(),
        health,
        bus: ports.bus.clone(),
        timers: ports.timers.clone(),
        sessions: ports.sessions.clone(),
        replies: ports.replies.clone(),
        bots: bots.clone(),
    });
    let mut app = ops.clone().router(metrics_listener.is_none());
    if let Some(l) = metrics_listener {
        let (mut stop, http) = (supervision.stop.clone(), options.http);
        let app = ops.router(true).fallback(|| async { http::not_found() });
        aborting.push(tokio::spawn(async move {
            let stopped = async move { supervise::until_stopped(&mut stop).await };
            if let Err(e) = transport::serve(l, app, http, stopped).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        }));
    }
    if runs(Role::Gateway) {
        let gateway = Gateway::new(
            bots.clone(),
            ports.bus.clone(),
            ports.transcript.clone(),
            ports.sessions.clone(),
            metrics.clone(),
            clock.clone(),
            options.body_limit,
            options.operators.clone(),
        );
        let mut gateway = gateway;
        gateway.allowed_origins.clone_from(&options.allowed_origins);
        gateway.admission =
            admission::Admission::new(options.admission, options.client_address_header.clone(), clock.clone());
        let gateway = Arc::new(gateway);
        // Usually the key is there before the first request; else the web chat answers 503
        // until a retry loads it.
        if let Err(e) = gateway.try_load_key(&*ports.flows).await {
            tracing::error!(error = %e, "cannot load the web conversation key yet; retrying");
        }
        let (load, mut stop) = (gateway.clone().load_key(ports.flows.clone()), supervision.stop.clone());
        aborting.push(tokio::spawn(async move {
            tokio::select! {
                _ = load => {}
                _ = supervise::until_stopped(&mut stop) => {}
            }
        }));
        app = app.merge(gateway.router());
    }
    let app = app.fallback(|| async { http::not_found() });
    let result = transport::serve(listener, app, options.http, shutdown).await;
    // Everything acknowledged is stored already; finishing the current batches saves only
    // the work of doing them again at the next start.
    let _ = stop.send(true);
    for w in finishing {
        let _ = w.await;
    }
    if runs(Role::History) {
        shipper.flush(std::time::Duration::from_secs(5)).await;
    }
    for h in aborting {
        let _ = h.await;
    }
    result
}
