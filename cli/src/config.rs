//! `botc.toml`: what `botc serve` runs. Read and checked completely before anything binds,
//! so a mistake is reported with its file, line and fix instead of half a server starting.

// A botc built without the distributed roles still reads their sections (one botc.toml
// serves both builds) but has no use for them.
#![cfg_attr(not(feature = "distributed"), allow(dead_code))]

use botc_serve::Platform;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (the command line's `--listen` wins).
    pub listen: Option<std::net::SocketAddr>,
    /// Where conversations, timers and queued events are kept, relative to the config
    /// file (the command line's `--data-dir` wins).
    pub data_dir: Option<PathBuf>,
    /// The flow registry environment (`production`, `staging`) whose versions the
    /// processes serve and follow, and that `botc deploy` moves (docs/deploy.md); unset,
    /// `botc serve` serves the flow files as given.
    pub environment: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Where the platforms' APIs are (tests point them at a fake server).
    #[serde(default)]
    pub platforms: Apis,
    /// `[admin]`: the operator token (hand-back, waiting counts).
    #[serde(default)]
    pub admin: Admin,
    /// `[web]`: the web chat's API for pages on other sites.
    #[serde(default)]
    pub web: Web,
    #[serde(default)]
    pub plans: Plans,
    #[serde(default)]
    pub bots: Vec<BotConfig>,
    /// `[[http_mocks]]`: canned answers for flows' http requests (a demo server, or one
    /// whose flows call APIs it must not reach); checked into `mocks`.
    #[serde(default)]
    pub http_mocks: Vec<HttpMockConfig>,
    #[serde(skip)]
    pub mocks: Vec<botc_serve::HttpMock>,
    /// The distributed roles' infrastructure (docs/distributed.md); `botc serve` ignores it.
    pub kafka: Option<KafkaSection>,
    pub redis: Option<RedisSection>,
    pub postgres: Option<PostgresSection>,
}

/// One `[[http_mocks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMockConfig {
    /// `"POST https://api.example.com/v1/orders"`: the method and the whole URL.
    pub request: String,
    #[serde(default = "default_mock_status")]
    pub status: u16,
    /// The response body: a TOML value (a table is a JSON object) or a string.
    pub body: Option<toml::Value>,
}

fn default_mock_status() -> u16 {
    200
}

/// `[kafka]`: the event bus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `host:port,host:port`.
    pub brokers: String,
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The topic's partitions: the most workers that can step events at once.
    #[serde(default = "default_kafka_partitions")]
    pub partitions: usize,
    /// Copies of each partition `botc kafka init` asks for.
    #[serde(default = "default_replication")]
    pub replication: u16,
    /// Longest a gateway waits for the brokers before answering 503.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// Extra librdkafka settings (`"security.protocol" = "SASL_SSL"`).
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    /// librdkafka settings whose values are secrets: the names of the environment variables
    /// holding them (`"sasl.password" = "KAFKA_PASSWORD"`).
    #[serde(default)]
    pub settings_env: std::collections::BTreeMap<String, String>,
}

fn default_topic() -> String {
    "botc-events".into()
}
fn default_kafka_partitions() -> usize {
    16
}
fn default_replication() -> u16 {
    3
}
fn default_publish_timeout_ms() -> u64 {
    5_000
}

/// `[redis]`: one server (`url` or `url_env`) or a cluster (`cluster`, every node or a few).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    pub url: Option<String>,
    /// The environment variable holding the URL (when it carries a password).
    pub url_env: Option<String>,
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Put before every key, so several deployments can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Replicas every write must reach before a batch counts as done (Redis `WAIT`); 1 for
    /// a cluster whose masters each have a replica, so a failover loses nothing.
    #[serde(default)]
    pub replicas: usize,
}

fn default_prefix() -> String {
    "botc:".into()
}

/// `[postgres]`: history and the flow registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    pub url: Option<String>,
    /// The environment variable holding the URL (when it carries a password).
    pub url_env: Option<String>,
    /// A read replica that `botc history` reads from (or `read_url_env`).
    pub read_url: Option<String>,
    pub read_url_env: Option<String>,
    #[serde(default = "default_schema")]
    pub schema: String,
    #[serde(default = "default_pool")]
    pub pool: u32,
}

fn default_schema() -> String {
    "botc".into()
}
fn default_pool() -> u32 {
    8
}

/// The distributed roles' settings, complete and checked, secrets read.
#[cfg(feature = "distributed")]
pub struct Infra {
    pub kafka: botc_dist::KafkaConfig,
    pub replication: u16,
    pub redis: botc_dist::RedisAddr,
    pub prefix: String,
    pub replicas: usize,
    pub postgres: botc_dist::PostgresConfig,
}

/// Reads `[kafka]`, `[redis]` and `[postgres]` of a loaded config (`path` for messages):
/// every setting checked and every secret read before anything connects.
#[cfg(feature = "distributed")]
pub fn infra(config: &Config, path: &Path) -> Result<Infra, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line_of =
        |needle: &str| text.lines().position(|l| l.contains(needle)).map_or(String::new(), |i| format!(":{}", i + 1));
    let missing = |section: &str, example: &str| {
        format!(
            "{shown}: the distributed roles need a [{section}] section, e.g.\n\n[{section}]\n{example}\n\n(see docs/distributed.md)"
        )
    };
    let env = |name: &str, field: &str, section: &str| match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!("{shown}{}: environment variable {name} ({section}.{field}) is not set", line_of(name))),
    };
    let k = config.kafka.as_ref().ok_or_else(|| missing("kafka", "brokers = \"127.0.0.1:9092\""))?;
    if k.brokers.trim().is_empty() {
        return Err(format!(
            "{shown}{}: kafka.brokers is empty; give host:port of one or more brokers",
            line_of("brokers")
        ));
    }
    if k.partitions == 0 || k.partitions > 1024 {
        return Err(format!("{shown}{}: kafka.partitions must be between 1 and 1024", line_of("partitions")));
    }
    if k.topic.is_empty() || !k.topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!(
            "{shown}{}: kafka.topic `{}` is not a valid topic name; use letters, digits, `.`, `_` and `-`",
            line_of("topic"),
            k.topic
        ));
    }
    if !(100..=120_000).contains(&k.publish_timeout_ms) {
        return Err(format!(
            "{shown}{}: kafka.publish_timeout_ms must be between 100 and 120000 (platforms give up on a webhook after seconds)",
            line_of("publish_timeout_ms")
        ));
    }
    let mut settings: Vec<(String, String)> = k.settings.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
    for (setting, var) in &k.settings_env {
        settings.push((setting.clone(), env(var, &format!("settings_env.\"{setting}\""), "kafka")?));
    }
    let r = config.redis.as_ref().ok_or_else(|| missing("redis", "url = \"redis://127.0.0.1:6379\""))?;
    let redis = match (&r.url, &r.url_env, r.cluster.is_empty()) {
        (Some(url), None, true) => botc_dist::RedisAddr::Single(url.clone()),
        (None, Some(var), true) => botc_dist::RedisAddr::Single(env(var, "url_env", "redis")?),
        (None, None, false) => botc_dist::RedisAddr::Cluster(r.cluster.clone()),
        _ => {
            return Err(format!(
                "{shown}{}: give exactly one of redis.url, redis.url_env or redis.cluster",
                line_of("[redis]")
            ));
        }
    };
    let p = config.postgres.as_ref().ok_or_else(|| missing("postgres", "url = \"postgres://botc@127.0.0.1/botc\""))?;
    let url = match (&p.url, &p.url_env) {
        (Some(url), None) => url.clone(),
        (None, Some(var)) => env(var, "url_env", "postgres")?,
        _ => {
            return Err(format!(
                "{shown}{}: give exactly one of postgres.url or postgres.url_env",
                line_of("[postgres]")
            ));
        }
    };
    let read_url = match (&p.read_url, &p.read_url_env) {
        (None, None) => None,
        (Some(url), None) => Some(url.clone()),
        (None, Some(var)) => Some(env(var, "read_url_env", "postgres")?),
        _ => {
            return Err(format!(
                "{shown}{}: give at most one of postgres.read_url or postgres.read_url_env",
                line_of("read_url")
            ));
        }
    };
    if p.schema.is_empty() || !p.schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{shown}{}: postgres.schema must be letters, digits and _", line_of("schema")));
    }
    Ok(Infra {
        kafka: botc_dist::KafkaConfig {
            brokers: k.brokers.clone(),
            topic: k.topic.clone(),
            partitions: k.partitions,
            publish_timeout: std::time::Duration::from_millis(k.publish_timeout_ms),
            settings,
        },
        replication: k.replication,
        redis,
        prefix: r.prefix.clone(),
        replicas: r.replicas,
        postgres: botc_dist::PostgresConfig { url, read_url, schema: p.schema.clone(), pool: p.pool.max(1) },
    })
}

/// `[admin]`: who may do what operators and agents do over HTTP.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// The environment variable holding the operator token (at least 16 characters).
    pub token_env: Option<String>,
    /// Serve `/metrics` on this address instead of the main one (e.g. `0.0.0.0:9090`, kept
    /// inside the network).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The token, read from `token_env` when the file is loaded.
    #[serde(skip)]
    pub token: Option<botc_serve::Secret>,
}

/// `[web]`: the web chat's API as other sites' pages (the chat widget) use it.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// Origins (`https://shop.example.com`) whose pages may talk to the web chat's API from
    /// the browser (CORS); the server's own pages always may.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The header a proxy in front of botc puts the client's address in (`X-Real-IP`, or
    /// `X-Forwarded-For`, whose last entry counts), for per-client limits. Set it only when
    /// clients can reach botc through that proxy alone: anyone else could name any address.
    pub client_address_header: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Apis {
    pub discord_api: Option<String>,
    pub slack_api: Option<String>,
    pub telegram_api: Option<String>,
}

/// Send budgets per plan, on top of each platform's own limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plans {
    #[serde(default = "free_plan")]
    pub free: PlanLimits,
    #[serde(default)]
    pub premium: PlanLimits,
}

impl Default for Plans {
    fn default() -> Self {
        Plans { free: free_plan(), premium: PlanLimits::default() }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    /// Messages a bot on this plan may send per second (unset: only the platform's limit).
    pub messages_per_second: Option<u32>,
}

fn free_plan() -> PlanLimits {
    PlanLimits { messages_per_second: Some(10) }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    #[serde(default = "default_partitions")]
    pub partitions: usize,
    /// Conversations idle this many days are forgotten (0: never); history stays.
    #[serde(default = "default_forget")]
    pub forget_idle_days: u64,
    /// How long a process's hold on work (a partition, a bot's sends) lasts unrenewed: how
    /// long the work waits after its process died without a word.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// Longest a request's head may take to arrive (slowloris), also the longest an idle
    /// keep-alive connection stays open.
    #[serde(default = "default_header_read")]
    pub header_read_seconds: u64,
    /// Most connections open at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Web chat: messages and new conversations per minute from one client address, and how
    /// many of them may come at once.
    #[serde(default = "default_client_per_minute")]
    pub client_per_minute: u32,
    #[serde(default = "default_client_burst")]
    pub client_burst: u32,
    /// Web chat: messages per minute into one conversation, and how many at once.
    #[serde(default = "default_conversation_per_minute")]
    pub conversation_per_minute: u32,
    #[serde(default = "default_conversation_burst")]
    pub conversation_burst: u32,
    /// Web chat: long-polls (`wait`) one client address may hold open at once.
    #[serde(default = "default_client_long_polls")]
    pub client_long_polls: usize,
    /// Memory for caching the data file (`botc serve`), in MiB.
    #[serde(default = "default_store_cache_mb")]
    pub store_cache_mb: usize,
}

fn default_store_cache_mb() -> usize {
    botc_serve::DEFAULT_CACHE_BYTES / (1024 * 1024)
}

impl Limits {
    /// The web chat's per-client admission limits.
    pub fn admission(&self) -> botc_serve::AdmissionLimits {
        use botc_runtime::platforms::limiter::Limit;
        let minute = std::time::Duration::from_secs(60);
        botc_serve::AdmissionLimits {
            per_client: Limit { rate: self.client_per_minute, period: minute, burst: self.client_burst },
            per_conversation: Limit {
                rate: self.conversation_per_minute,
                period: minute,
                burst: self.conversation_burst,
            },
            polls_per_client: self.client_long_polls,
        }
    }
}

fn default_client_per_minute() -> u32 {
    botc_serve::AdmissionLimits::default().per_client.rate
}

fn default_client_burst() -> u32 {
    botc_serve::AdmissionLimits::default().per_client.burst
}

fn default_conversation_per_minute() -> u32 {
    botc_serve::AdmissionLimits::default().per_conversation.rate
}

fn default_conversation_burst() -> u32 {
    botc_serve::AdmissionLimits::default().per_conversation.burst
}

fn default_client_long_polls() -> usize {
    botc_serve::AdmissionLimits::default().polls_per_client
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: default_body_limit(),
            queue_capacity: default_queue(),
            partitions: default_partitions(),
            forget_idle_days: default_forget(),
            lease_seconds: default_lease(),
            header_read_seconds: default_header_read(),
            max_connections: default_max_connections(),
            client_per_minute: default_client_per_minute(),
            client_burst: default_client_burst(),
            conversation_per_minute: default_conversation_per_minute(),
            conversation_burst: default_conversation_burst(),
            client_long_polls: default_client_long_polls(),
            store_cache_mb: default_store_cache_mb(),
        }
    }
}

fn default_header_read() -> u64 {
    10
}

fn default_max_connections() -> usize {
    10_000
}

fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_queue() -> usize {
    10_000
}
fn default_partitions() -> usize {
    4
}
fn default_forget() -> u64 {
    30
}
fn default_lease() -> u64 {
    10
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Premium,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    pub id: String,
    /// The flow file, relative to the config file.
    pub flow: PathBuf,
    #[serde(default = "default_platform", deserialize_with = "platform")]
    pub platform: Platform,
    /// Display name (default: the flow's name).
    pub name: Option<String>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub plan: Plan,
    /// Names of environment variables holding the bot's credentials (never the values).
    pub token_env: Option<String>,
    pub public_key_env: Option<String>,
    pub signing_secret_env: Option<String>,
    pub webhook_secret_env: Option<String>,
    /// This bot's send budget per second, instead of its platform's usual one (capped by
    /// its plan's).
    pub messages_per_second: Option<u32>,
    /// Messages per second into one conversation (default: the platform's, e.g. Telegram's 1).
    pub conversation_messages_per_second: Option<u32>,
    /// The credentials, read from the environment by [`load`].
    #[serde(skip)]
    pub secrets: botc_serve::Secrets,
}

fn default_platform() -> Platform {
    Platform::Web
}

/// `platform = "telegram"`, read into the runtime's own [`Platform`].
fn platform<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
    let name = String::deserialize(d)?;
    Platform::parse(&name).ok_or_else(|| {
        serde::de::Error::custom(format!("unknown platform `{name}`; use web, discord, slack or telegram"))
    })
}

/// An environment's name: 1-64 letters, digits, `-` or `_`.
pub fn check_environment(name: &str) -> Result<(), String> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!("environment `{name}` is not valid; use 1-64 letters, digits, `-` or `_` (e.g. production)"))
    }
}

/// Reads and checks a config file. The error is a complete message for the user.
pub fn load(path: &Path) -> Result<Config, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut config: Config = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        format!("{shown}{at}: {}{}", e.message().trim_end(), misspelt(e.message()))
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let line_of =
        |needle: &str| text.lines().position(|l| l.contains(needle)).map_or(String::new(), |i| format!(":{}", i + 1));
    // Every mistake in one run, each with its line.
    let mut errors: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for bot in &config.bots {
        let valid = !bot.id.is_empty()
            && bot.id.len() <= 64
            && bot.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid {
            errors.push(format!(
                "{shown}{}: bot id `{}` is not valid; use 1-64 letters, digits, `-` or `_`",
                line_of(&format!("\"{}\"", bot.id)),
                bot.id
            ));
        }
        if seen.contains(&bot.id.as_str()) {
            errors.push(format!(
                "{shown}{}: two bots have the id `{}`; ids must be unique",
                line_of(&format!("\"{}\"", bot.id)),
                bot.id
            ));
        }
        seen.push(&bot.id);
        if bot.messages_per_second == Some(0) || bot.conversation_messages_per_second == Some(0) {
            errors.push(format!(
                "{shown}{}: bot `{}`: a send budget of 0 would never send; remove it or give at least 1",
                line_of("messages_per_second"),
                bot.id
            ));
        }
        if !base.join(&bot.flow).exists() {
            errors.push(format!(
                "{shown}{}: bot `{}`: flow file {} does not exist (paths are relative to the config file){}",
                line_of(&bot.flow.to_string_lossy()),
                bot.id,
                base.join(&bot.flow).display(),
                nearby_file(&base.join(&bot.flow))
            ));
        }
    }
    if let Some(env) = &config.environment
        && let Err(e) = check_environment(env)
    {
        errors.push(format!("{shown}{}: {e}", line_of("environment")));
    }
    if config.limits.partitions == 0 || config.limits.partitions > 1024 {
        errors.push(format!("{shown}{}: limits.partitions must be between 1 and 1024", line_of("partitions")));
    }
    if config.limits.queue_capacity == 0 {
        errors.push(format!(
            "{shown}{}: limits.queue_capacity must be at least 1 (events waiting per partition before the gateway answers 503)",
            line_of("queue_capacity")
        ));
    }
    if !(2..=300).contains(&config.limits.lease_seconds) {
        errors.push(format!(
            "{shown}{}: limits.lease_seconds must be between 2 and 300 (a lease is renewed every third of it)",
            line_of("lease_seconds")
        ));
    }
    if !(1..=300).contains(&config.limits.header_read_seconds) {
        errors.push(format!(
            "{shown}{}: limits.header_read_seconds must be between 1 and 300 (how long a request's head may take)",
            line_of("header_read_seconds")
        ));
    }
    if config.limits.max_connections == 0 {
        errors.push(format!("{shown}{}: limits.max_connections must be at least 1", line_of("max_connections")));
    }
    for (key, value) in [
        ("client_per_minute", config.limits.client_per_minute as usize),
        ("client_burst", config.limits.client_burst as usize),
        ("conversation_per_minute", config.limits.conversation_per_minute as usize),
        ("conversation_burst", config.limits.conversation_burst as usize),
        ("client_long_polls", config.limits.client_long_polls),
    ] {
        if value == 0 {
            errors.push(format!(
                "{shown}{}: limits.{key} must be at least 1 (the web chat's per-client limits cannot be turned off, only raised)",
                line_of(key)
            ));
        }
    }
    if !(8..=1_048_576).contains(&config.limits.store_cache_mb) {
        errors.push(format!(
            "{shown}{}: limits.store_cache_mb must be between 8 and 1048576 (MiB of memory for caching the data file)",
            line_of("store_cache_mb")
        ));
    }
    if let Some(h) = &config.web.client_address_header
        && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
    {
        errors.push(format!(
            "{shown}{}: web.client_address_header: `{h}` is not a header name (like X-Real-IP)",
            line_of("client_address_header")
        ));
    }
    if config.limits.body_limit < 1024 {
        errors.push(format!("{shown}{}: limits.body_limit must be at least 1024 bytes", line_of("body_limit")));
    }
    for bot in &mut config.bots {
        bot.flow = base.join(&bot.flow);
        let at = line_of(&format!("\"{}\"", bot.id));
        match secrets(bot) {
            Ok(s) => bot.secrets = s,
            Err(e) => errors.push(format!("{shown}{at}: bot `{}`: {e}", bot.id)),
        }
    }
    if let Some(var) = &config.admin.token_env {
        let at = line_of("token_env");
        match std::env::var(var) {
            Ok(v) if v.trim().len() >= 16 => config.admin.token = Some(botc_serve::Secret::new(v.trim().to_string())),
            Ok(v) if v.trim().is_empty() => {
                errors.push(format!(
                    "{shown}{at}: environment variable {var} (admin.token_env) is empty; set it to the operator token"
                ));
            }
            Ok(_) => {
                errors.push(format!(
                    "{shown}{at}: the operator token in {var} (admin.token_env) is too short; use at least 16 characters (e.g. `openssl rand -hex 32`)"
                ));
            }
            Err(_) => {
                errors.push(format!(
                    "{shown}{at}: environment variable {var} (admin.token_env) is not set; set it to the operator token"
                ));
            }
        }
    }
    for mock in &config.http_mocks {
        let at = line_of(&mock.request);
        let (method, url) = mock.request.trim().split_once(' ').unwrap_or(("", ""));
        let url = url.trim();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method)
            || !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push(format!(
                "{shown}{at}: http_mocks: `{}` is not a request; write the method and the whole URL, like \"POST https://api.example.com/v1/orders\"",
                mock.request
            ));
            continue;
        }
        if !(100..=599).contains(&mock.status) {
            errors.push(format!("{shown}{at}: http_mocks: status {} is not an HTTP status (100-599)", mock.status));
            continue;
        }
        let body = match &mock.body {
            None => serde_json::Value::Null,
            Some(toml::Value::String(s)) => serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.clone())),
            Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        };
        config.mocks.push(botc_serve::HttpMock { method: method.into(), url: url.into(), status: mock.status, body });
    }
    for origin in &config.web.allowed_origins {
        if let Err(why) = botc_serve::check_origin(origin) {
            errors.push(format!("{shown}{}: web.allowed_origins: {why}", line_of("allowed_origins")));
        }
    }
    for plan in [config.plans.free, config.plans.premium] {
        if plan.messages_per_second == Some(0) {
            errors.push(format!("{shown}{}: a plan's messages_per_second must be at least 1", line_of("[plans")));
        }
    }
    if !errors.is_empty() {
        // In the file's order (each starts `PATH:LINE:`), printed after "error: ", one a line.
        let prefix = format!("{shown}:");
        let line = |e: &String| {
            let rest = e.strip_prefix(&prefix).unwrap_or_default();
            rest.split(':').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX)
        };
        errors.sort_by_key(line);
        return Err(errors.join("\nerror: "));
    }
    config.data_dir = config.data_dir.map(|d| base.join(d));
    Ok(config)
}

/// "; did you mean `platform`?" for serde's "unknown field `platfrom`, expected one of
/// `id`, `flow`, ..." (empty for any other message).
fn misspelt(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return String::new() };
    let Some((name, expected)) = rest.split_once('`') else { return String::new() };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    botc_compiler::diagnostic::did_you_mean(name, candidates).map_or(String::new(), |hint| format!("; {hint}"))
}

/// "; did you mean `pizza_order.yaml`?" for a flow file that is not there, from the flow
/// files next to where it was looked for.
fn nearby_file(missing: &Path) -> String {
    let (Some(dir), Some(name)) = (missing.parent(), missing.file_name().and_then(|n| n.to_str())) else {
        return String::new();
    };
    let files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let flows = files.iter().filter(|f| f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".flow"));
    botc_compiler::diagnostic::did_you_mean(name, flows.map(String::as_str))
        .map_or(String::new(), |hint| format!("; {hint}"))
}

/// Reads a bot's credentials from the environment variables its config names, checking each
/// is there and well-formed. Errors name the variable, never its value.
fn secrets(bot: &BotConfig) -> Result<botc_serve::Secrets, String> {
    use botc_serve::{Secret, Secrets};
    let read = |field: &str, var: &Option<String>, what: &str| -> Result<Secret, String> {
        let Some(name) = var else {
            return Err(format!(
                "a {:?} bot needs {field} = \"NAME\": the environment variable holding {what}",
                bot.platform
            ));
        };
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_string())),
            Ok(_) => Err(format!("environment variable {name} ({field}) is empty; set it to {what}")),
            Err(_) => Err(format!("environment variable {name} ({field}) is not set; set it to {what}")),
        }
    };
    let extra = |field: &str, var: &Option<String>| match var {
        Some(_) => Err(format!("{field} does not apply to a {:?} bot; remove it", bot.platform)),
        None => Ok(()),
    };
    let mut s = Secrets::default();
    match bot.platform {
        Platform::Web => {
            for (field, var) in [
                ("token_env", &bot.token_env),
                ("public_key_env", &bot.public_key_env),
                ("signing_secret_env", &bot.signing_secret_env),
                ("webhook_secret_env", &bot.webhook_secret_env),
            ] {
                extra(field, var)?;
            }
        }
        Platform::Telegram => {
            extra("public_key_env", &bot.public_key_env)?;
            extra("signing_secret_env", &bot.signing_secret_env)?;
            s.token = Some(read("token_env", &bot.token_env, "the bot token from @BotFather")?);
            let secret = read("webhook_secret_env", &bot.webhook_secret_env, "the secret_token given to setWebhook")?;
            let v = secret.expose();
            if v.len() > 256 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(format!(
                    "the value of {} (webhook_secret_env) is not a valid Telegram secret_token: use 1-256 of A-Z, a-z, 0-9, _ and -",
                    bot.webhook_secret_env.as_deref().unwrap_or_default()
                ));
            }
            s.webhook_secret = Some(secret);
        }
        Platform::Slack => {
            extra("public_key_env", &bot.public_key_env)?;
            extra("webhook_secret_env", &bot.webhook_secret_env)?;
            s.token = Some(read("token_env", &bot.token_env, "the bot user OAuth token (xoxb-...)")?);
            s.signing_secret = Some(read("signing_secret_env", &bot.signing_secret_env, "the app's signing secret")?);
        }
        Platform::Discord => {
            extra("signing_secret_env", &bot.signing_secret_env)?;
            extra("webhook_secret_env", &bot.webhook_secret_env)?;
            s.token = Some(read("token_env", &bot.token_env, "the bot token")?);
            let key = read("public_key_env", &bot.public_key_env, "the application's public key")?;
            s.discord_key = Some(botc_runtime::platforms::verify::DiscordKey::parse(key.expose()).map_err(|e| {
                format!("the value of {} (public_key_env): {e}", bot.public_key_env.as_deref().unwrap_or_default())
            })?);
        }
    }
    Ok(s)
}
