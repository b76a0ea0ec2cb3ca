//! `botc gateway`, `botc worker`, `botc dispatcher`, `botc scheduler`: one role of the
//! distributed runtime per process, on Kafka, Redis and Postgres (docs/distributed.md), and
//! `botc kafka init`, which creates the events topic. The roles are `botc serve`'s own,
//! composed by the same root; only the ports differ.

use super::serve::{bots_and_options, listen_until_signalled};
use crate::{config, fail};
use botc_dist::{Conn, Distributed, Kafka, Keys, Postgres, Redis};
use botc_serve as serve;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Gateway,
    Worker,
    Dispatcher,
    Scheduler,
}

impl Part {
    fn roles(self) -> Vec<serve::Role> {
        use serve::Role;
        match self {
            Part::Gateway => vec![Role::Gateway],
            Part::Worker => vec![Role::Worker],
            Part::Dispatcher => vec![Role::Dispatcher],
            // Timers, flows' http requests and history: the small roles, together.
            Part::Scheduler => vec![Role::Scheduler, Role::Outbox, Role::History],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Gateway => "gateway",
            Part::Worker => "worker",
            Part::Dispatcher => "dispatcher",
            Part::Scheduler => "scheduler",
        }
    }
}

/// Reads and checks everything a distributed command needs before anything connects.
fn read(config_path: &Path) -> Result<(config::Config, config::Infra), String> {
    let c = config::load(config_path)?;
    let infra = config::infra(&c, config_path)?;
    Ok((c, infra))
}

async fn connect(infra: &config::Infra) -> Result<(Distributed, Postgres), String> {
    let conn =
        Conn::connect(&infra.redis).await.map_err(|e| format!("cannot connect to redis ({}): {e}", infra.redis))?;
    let redis = Redis::new(conn, Keys::new(&infra.prefix), 0, infra.replicas);
    redis.ping().await.map_err(|e| format!("redis does not answer: {e}"))?;
    let kafka = Kafka::new(infra.kafka.clone()).map_err(|e| format!("cannot set up the kafka client: {e}"))?;
    kafka.check().await?;
    let postgres = Postgres::open(&infra.postgres).await?;
    Ok((Distributed::new(redis, kafka), postgres))
}

pub(crate) fn role_cmd(
    part: Part,
    paths: Vec<PathBuf>,
    config_path: &Path,
    listen: Option<std::net::SocketAddr>,
    environment: Option<String>,
) -> ExitCode {
    let (config, infra) = match read(config_path) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (bots, mut options, _, _) = match bots_and_options(paths, Some(&config)) {
        Ok(b) => b,
        Err(code) => return code,
    };
    options.roles = part.roles();
    if let Err(e) = super::serve::follow(&mut options, environment) {
        return fail(e);
    }
    let listen = listen.or(config.listen).unwrap_or(([127, 0, 0, 1], 8080).into());
    options.operators = super::serve::operators(Some(&config), listen);
    let idle_ms = options.forget_idle.map_or(0, |d| d.as_millis() as u64);
    crate::with_runtime(async move {
        let (mut store, postgres) = match connect(&infra).await {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        store.redis.idle_ms = idle_ms;
        store.listen(&infra.redis);
        let store = Arc::new(store);
        let postgres = Arc::new(postgres);
        let (listener, shutdown) = match listen_until_signalled(listen).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let metrics_listener = match super::serve::metrics_listener(Some(&config)).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let addr = listener.local_addr().map_or(listen.to_string(), |a| a.to_string());
        outln!("botc {} is running {} bot(s); health and metrics at http://{addr}/", part.name(), bots.len());
        tracing::info!(role = part.name(), address = %addr, bots = bots.len(), "running");
        let clock: Arc<dyn botc_runtime::clock::Clock> = Arc::new(botc_runtime::clock::SystemClock::default());
        // Send budgets are shared by every dispatcher process.
        let limiter = Arc::new(botc_dist::RedisLimiter { redis: store.redis.clone() });
        let ports = serve::Ports::of(store, postgres.clone(), limiter, clock);
        let listeners = serve::Listeners { main: listener, metrics: metrics_listener };
        let result = serve::serve_with(listeners, bots, options, ports, shutdown).await;
        postgres.close().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("server error: {e}")),
        }
    })
}

/// `botc kafka init`: creates the events topic with the configured partitions and copies;
/// a topic that exists already is checked instead.
pub(crate) fn kafka_init_cmd(config_path: &Path) -> ExitCode {
    let infra = match read(config_path) {
        Ok((_, infra)) => infra,
        Err(e) => return fail(e),
    };
    crate::with_runtime(async move {
        let k = &infra.kafka;
        match botc_dist::kafka::create_topic(k, infra.replication).await {
            Ok(true) => {
                outln!(
                    "created topic {} with {} partitions ({} copies each)",
                    k.topic,
                    k.partitions,
                    infra.replication
                );
                ExitCode::SUCCESS
            }
            Ok(false) => {
                let kafka = match Kafka::new(k.clone()) {
                    Ok(k) => k,
                    Err(e) => return fail(e),
                };
                match kafka.check().await {
                    Ok(()) => {
                        outln!("topic {} exists with {} partitions; nothing to do", k.topic, k.partitions);
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            Err(e) => fail(e),
        }
    })
}

/// `botc dev kafka-mock`: librdkafka's mock cluster with the events topic, for trying the
/// distributed roles on one machine and for tests; prints the brokers, runs until stopped.
/// Lines on stdin inject faults: `down` (the brokers stop answering), `up`.
pub(crate) fn kafka_mock_cmd(topics: &[String], partitions: usize) -> ExitCode {
    use botc_dist::mock::Fault;
    let topics: Vec<(&str, usize)> = topics.iter().map(|t| (t.as_str(), partitions)).collect();
    let mock = match botc_dist::mock::MockKafka::start(1, &topics) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    outln!("{}", mock.brokers);
    crate::with_runtime(async move {
        use tokio::io::AsyncBufReadExt;
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => return fail(format!("cannot handle signals: {e}")),
        };
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                line = lines.next_line(), if stdin_open => match line {
                    Ok(Some(l)) if l.trim() == "down" => mock.fault(Fault::Down),
                    Ok(Some(l)) if l.trim() == "up" => mock.fault(Fault::Up),
                    Ok(Some(l)) => eprintln!("unknown fault `{}`; use `down` or `up`", l.trim()),
                    Ok(None) | Err(_) => stdin_open = false,
                },
            }
        }
        drop(mock);
        ExitCode::SUCCESS
    })
}

/// `botc dev kafka-passthrough`: the brokers' own consume-then-produce rate on this machine.
pub(crate) fn kafka_passthrough_cmd(
    brokers: String,
    topic: String,
    partitions: usize,
    output: &str,
    events: usize,
    size: usize,
) -> ExitCode {
    let config = botc_dist::KafkaConfig {
        brokers,
        topic,
        partitions,
        publish_timeout: std::time::Duration::from_secs(60),
        settings: vec![],
    };
    crate::with_runtime(async move {
        let out = botc_dist::KafkaConfig { topic: output.to_string(), ..config.clone() };
        for topic in [&config, &out] {
            // Created only when missing (librdkafka's mock cluster cannot create topics: start
            // it with them, `botc dev kafka-mock --topic A --topic B`).
            let exists = match botc_dist::Kafka::new(topic.clone()) {
                Ok(k) => k.check().await.is_ok(),
                Err(e) => return fail(e.to_string()),
            };
            if !exists && let Err(e) = botc_dist::kafka::create_topic(topic, 1).await {
                return fail(e);
            }
        }
        let clock = botc_runtime::clock::SystemClock::default();
        match botc_dist::passthrough::run(&config, output, events, size, &clock).await {
            Ok(r) => {
                let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
                outln!(
                    "produced {} events of {size} bytes in {:.2} s: {:.0}/s; consumed and produced again in {:.2} s: {:.0}/s",
                    r.produced,
                    r.produce.as_secs_f64(),
                    rate(r.produced, r.produce),
                    r.pass.as_secs_f64(),
                    rate(r.passed, r.pass)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        }
    })
}

/// `botc doctor`: checks that the distributed roles can run with this config (brokers,
/// topic, Redis and its mode, Postgres and its schema) and says what to do about what is
/// wrong. Changes nothing. Exit 0: nothing wrong (warnings maybe); 1: something is.
pub(crate) fn doctor_cmd(config_path: &Path) -> ExitCode {
    let infra = match read(config_path) {
        Ok((_, infra)) => {
            outln!("ok    {} reads and checks", config_path.display());
            infra
        }
        Err(e) => {
            outln!("FAIL  {e}");
            return ExitCode::from(crate::EXIT_FINDINGS);
        }
    };
    crate::with_runtime(async move {
        let mut failed = false;
        let mut report = |ok: Result<String, String>| match ok {
            Ok(line) => outln!("{line}"),
            Err(line) => {
                failed = true;
                outln!("FAIL  {line}");
            }
        };
        let k = &infra.kafka;
        report(match Kafka::new(k.clone()) {
            Ok(kafka) => match kafka.check().await {
                Ok(()) => {
                    Ok(format!("ok    kafka at {}: topic {} has {} partitions", k.brokers, k.topic, k.partitions))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("kafka: {e}")),
        });
        let redis = match Conn::connect(&infra.redis).await {
            Ok(conn) => Some(Redis::new(conn, Keys::new(&infra.prefix), 0, infra.replicas)),
            Err(e) => {
                report(Err(format!("cannot connect to redis ({}): {e}", infra.redis)));
                None
            }
        };
        if let Some(redis) = redis {
            let configured_cluster = matches!(infra.redis, botc_dist::RedisAddr::Cluster(_));
            report(match redis.facts().await {
                Ok((true, _)) if !configured_cluster => {
                    Err("redis is a cluster but the config gives one url: list the nodes in redis.cluster instead"
                        .into())
                }
                Ok((false, _)) if configured_cluster => {
                    Err("redis.cluster is given but the server is not a cluster: give its url in redis.url".into())
                }
                Ok((_, keeps)) => {
                    if configured_cluster && infra.replicas == 0 {
                        outln!(
                            "warn  redis.replicas is 0: a batch counts as done before a replica has it, so a master's failover can lose the last ones; set redis.replicas = 1 when each master has a replica"
                        );
                    }
                    if !keeps {
                        outln!(
                            "warn  redis keeps nothing on disk (no AOF, no snapshots): a restart loses every conversation; turn on appendonly or run replicas with failover"
                        );
                    }
                    Ok(format!("ok    redis ({})", if configured_cluster { "cluster" } else { "one server" }))
                }
                Err(e) => Err(format!("redis: {e}")),
            });
        }
        let p = &infra.postgres;
        report(match Postgres::migrated(p).await {
            Ok((applied, known)) if applied == known => {
                Ok(format!("ok    postgres: schema {} is up to date", p.schema))
            }
            Ok((0, _)) => {
                Ok(format!("ok    postgres answers; schema {} is created when a role first starts", p.schema))
            }
            Ok((applied, known)) if applied < known => Ok(format!(
                "ok    postgres: schema {} is at migration {applied}; the roles bring it to {known} when they start",
                p.schema
            )),
            Ok((applied, known)) => Err(format!(
                "postgres schema {} is at migration {applied}, newer than this botc knows ({known}): upgrade botc",
                p.schema
            )),
            Err(e) => Err(e),
        });
        if failed { ExitCode::from(crate::EXIT_FINDINGS) } else { ExitCode::SUCCESS }
    })
}
