//! `botc load`: an open-model load generator for botc's web-chat API and its platform
//! webhooks, built like wrk2: a fixed set of keep-alive connections, each sending its share
//! of the requests on a fixed schedule, and latency measured from each request's *scheduled*
//! time. A slow server cannot hide its queueing by slowing the generator down (no coordinated
//! omission): a request that waits for its connection waits on the clock. How late sends
//! started is reported too, so a generator that cannot keep its schedule shows it.
//! `botc load-baseline` is a bare server that only acknowledges, for the ratio.
//!
//! Written on hyper's client connections rather than with an existing generator: wrk is a
//! closed model (wrk2, its open-model fork, is not packaged) and would need a Lua script to
//! give each Telegram update its own id and to sign each Slack event; oha sends one body for
//! every request; either would be a second install for CI.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a run is shaped.
#[derive(Clone, Debug)]
pub struct Options {
    /// Requests per second, offered on a fixed schedule.
    pub rate: u64,
    pub secs: u64,
    /// Conversations (web) or chats (platforms) the requests are spread over.
    pub conversations: u64,
    /// Keep-alive connections the requests are spread over.
    pub connections: usize,
    /// A sent request not answered within this is counted as timed out (from the send, as a
    /// platform's webhook timeout; waiting for its connection counts in its latency).
    pub timeout: Duration,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests scheduled; each was sent, unless its connection failed (an error) or it timed
    /// out before it could be.
    pub offered: usize,
    pub rate: u64,
    /// Answered with the target's success status.
    pub accepted: usize,
    /// Answered 503 with a `Retry-After`: the server is full and said when to come back.
    pub refused: usize,
    /// Anything else (status or connection error) and how often; `429` is over the server's
    /// per-client limits.
    pub errors: BTreeMap<String, usize>,
    /// Not answered within the timeout.
    pub timed_out: usize,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// Accepted requests' latency from their scheduled time.
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// How late the sends started against their schedule (the generator or its
    /// connections falling behind).
    pub late_p99: Duration,
    pub late_max: Duration,
}

impl Report {
    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "sent {} in {:.2}s ({}/s offered), accepted {}, refused {} (503), errors {}, timed out {}, \
             ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; sends late p99 {:.2} ms, max {:.2} ms",
            self.offered,
            self.elapsed.as_secs_f64(),
            self.rate,
            self.accepted,
            self.refused,
            self.error_count(),
            self.timed_out,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            ms(self.late_p99),
            ms(self.late_max),
        )?;
        if !self.errors.is_empty() {
            let list: Vec<String> = self.errors.iter().map(|(what, n)| format!("{what}: {n}")).collect();
            write!(f, " ({})", list.join(", "))?;
        }
        if let Some(limited) = self.errors.get("429") {
            write!(
                f,
                "\n{} of the errors were 429: over the server's per-client limits. One load generator is one client: raise [limits] client_per_minute, client_burst, conversation_per_minute and conversation_burst in the server's botc.toml for load tests",
                limited
            )?;
        }
        Ok(())
    }
}

/// What the generator sends.
#[derive(Clone, Debug)]
pub enum Target {
    /// Web-chat messages (answered 202).
    Web,
    /// Telegram updates with the webhook secret (answered 200).
    Telegram { secret: String },
    /// Slack events signed with the signing secret (answered 200).
    Slack { secret: String },
}

/// Where requests go: the server's address and the parts of each request that do not change.
struct Site {
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    authority: String,
    /// The base URL's path (a server behind a proxy at `/botc`), without its last `/`.
    prefix: String,
    bot: String,
    target: Target,
    /// Distinct per run, so platform event ids are new each time.
    run: u64,
    chats: Vec<(String, String)>,
    conversations: u64,
}

impl Site {
    /// Request `i` of the run and the status that means it was accepted.
    fn request(&self, i: u64) -> (hyper::Request<Full<Bytes>>, u16) {
        let c = i % self.conversations;
        let (path, body, ok, headers): (String, String, u16, Vec<(&str, String)>) = match &self.target {
            Target::Web => {
                let (id, token) = &self.chats[c as usize];
                (
                    format!("/api/bots/{}/conversations/{id}/messages", self.bot),
                    r#"{"text": "hi"}"#.to_string(),
                    202,
                    vec![("authorization", format!("Bearer {token}")), ("content-type", "application/json".into())],
                )
            }
            Target::Telegram { secret } => (
                format!("/webhooks/telegram/{}", self.bot),
                format!(
                    r#"{{"update_id":{},"message":{{"message_id":{i},"from":{{"id":{c},"first_name":"Load"}},"chat":{{"id":{c},"type":"private"}},"text":"hi"}}}}"#,
                    self.run * 1_000_000_000 + i
                ),
                200,
                vec![("x-telegram-bot-api-secret-token", secret.clone())],
            ),
            Target::Slack { secret } => {
                let body = format!(
                    r#"{{"type":"event_callback","event_id":"Ev{}x{i}","event":{{"type":"message","channel":"D{c}","channel_type":"im","user":"U{c}","text":"hi"}}}}"#,
                    self.run
                );
                let ts = botc_runtime::clock::Clock::unix(&botc_runtime::clock::SystemClock::default()).to_string();
                let sig = botc_runtime::platforms::verify::slack_sign(secret.as_bytes(), &ts, body.as_bytes());
                (
                    format!("/webhooks/slack/{}", self.bot),
                    body,
                    200,
                    vec![("x-slack-request-timestamp", ts), ("x-slack-signature", sig)],
                )
            }
        };
        let mut req = hyper::Request::post(format!("{}{path}", self.prefix)).header("host", &self.authority);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        (req.body(Full::new(Bytes::from(body))).expect("a well-formed request"), ok)
    }
}

/// One connection's share of a run.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    late: Vec<Duration>,
    accepted: usize,
    refused: usize,
    errors: BTreeMap<String, usize>,
    timed_out: usize,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends requests `first`, `first + step`, … of the run on one connection, each at its
/// scheduled time (or as soon as the previous answer is in, when behind).
async fn drive(
    site: Arc<Site>,
    opts: Options,
    start: Instant,
    sender: Sender,
    (first, step, total): (u64, u64, u64),
) -> Tally {
    let mut tally = Tally::default();
    let mut sender = Some(sender);
    let mut i = first;
    while i < total {
        let at = u128::from(i) * 1_000_000_000 / u128::from(opts.rate.max(1));
        let scheduled = start + Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX));
        tokio::time::sleep_until(scheduled.into()).await;
        let (req, ok) = site.request(i);
        i += step;
        let answer = tokio::time::timeout(opts.timeout, async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = Some(connect(&site.address).await?);
            }
            let s = sender.as_mut().expect("connected above");
            s.ready().await.map_err(|e| format!("connection: {e}"))?;
            #[allow(clippy::disallowed_methods)] // a generator measures real time
            tally.late.push(Instant::now().saturating_duration_since(scheduled));
            let resp = s.send_request(req).await.map_err(|e| format!("connection: {e}"))?;
            let (parts, body) = resp.into_parts();
            body.collect().await.map_err(|e| format!("connection: {e}"))?;
            Ok::<_, String>(parts)
        })
        .await;
        match answer {
            Err(_) => {
                tally.timed_out += 1;
                sender = None; // the answer may still come: never read it as the next one's
            }
            Ok(Err(e)) => {
                *tally.errors.entry(e).or_default() += 1;
                sender = None;
            }
            Ok(Ok(parts)) => match parts.status.as_u16() {
                s if s == ok => {
                    tally.accepted += 1;
                    tally.latencies.push(scheduled.elapsed());
                }
                503 if parts.headers.contains_key("retry-after") => tally.refused += 1,
                429 => *tally.errors.entry("429".into()).or_default() += 1,
                s => {
                    let what = if s == 503 { "503 without Retry-After".to_string() } else { format!("status {s}") };
                    *tally.errors.entry(what).or_default() += 1;
                }
            },
        }
    }
    tally
}

/// Offers `opts.rate` requests a second for `opts.secs` seconds to `base` (a botc serve URL,
/// plain HTTP), spread over `opts.conversations` conversations of `bot`.
pub async fn run(base: &str, bot: &str, target: Target, opts: Options) -> Result<Report, String> {
    let url = reqwest::Url::parse(base).map_err(|e| format!("`{base}` is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "`{base}`: botc load speaks plain HTTP; give it the server's http:// address (not a TLS front)"
        ));
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(format!("`{base}` names no host"));
    };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let (address, prefix) = (format!("{host}:{port}"), url.path().trim_end_matches('/').to_string());
    if opts.rate == 0 || opts.secs == 0 || opts.timeout.is_zero() {
        return Err("--rate, --duration and --timeout must be at least 1".into());
    }
    const MOST: u64 = 100_000_000;
    let total = opts.rate.checked_mul(opts.secs).filter(|&t| t <= MOST).ok_or_else(|| {
        format!("--rate × --duration is more than {MOST} requests, more than one run can keep the latencies of")
    })?;
    let clock = botc_runtime::clock::SystemClock::default();
    // The clock's milliseconds, cut to nine digits so run × 10⁹ + i fits Telegram's 64-bit
    // update_id.
    let run = botc_runtime::clock::Clock::unix_ms(&clock) % 1_000_000_000;
    let conversations = opts.conversations.max(1);
    // Web conversations are issued by the server: start them all before the clock runs.
    let mut chats = Vec::new();
    if let Target::Web = target {
        let client = reqwest::Client::new();
        for _ in 0..conversations {
            match start_chat(&client, base, bot).await {
                Ok(chat) => chats.push(chat),
                Err(e) => return Err(format!("cannot start a conversation of `{bot}` at {base}: {e}")),
            }
        }
    }
    let site = Arc::new(Site { address, authority, prefix, bot: bot.to_string(), target, run, chats, conversations });
    let step = (opts.connections.max(1) as u64).min(total);
    // Every connection is open before the clock runs, so setting one up is not in the first
    // requests' latency, and a server that is not there is an error, not a run of errors.
    let mut senders = Vec::new();
    for _ in 0..step {
        senders.push(connect(&site.address).await.map_err(|e| format!("cannot reach {base}: {e}"))?);
    }
    // A load generator measures real latency: it reads the real clock by design.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(0..step)
        .map(|(sender, first)| tokio::spawn(drive(site.clone(), opts.clone(), start, sender, (first, step, total))))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.map_err(|e| format!("a connection's task failed: {e}"))?;
        all.latencies.extend(t.latencies);
        all.late.extend(t.late);
        all.accepted += t.accepted;
        all.refused += t.refused;
        all.timed_out += t.timed_out;
        for (what, n) in t.errors {
            *all.errors.entry(what).or_default() += n;
        }
    }
    let elapsed = start.elapsed();
    let quantile = |l: &mut Vec<Duration>, q: f64| {
        l.sort_unstable();
        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Ok(Report {
        offered: total as usize,
        rate: opts.rate,
        accepted: all.accepted,
        refused: all.refused,
        errors: all.errors,
        timed_out: all.timed_out,
        elapsed,
        p50: quantile(&mut all.latencies, 0.50),
        p99: quantile(&mut all.latencies, 0.99),
        max: all.latencies.last().copied().unwrap_or_default(),
        late_p99: quantile(&mut all.late, 0.99),
        late_max: all.late.last().copied().unwrap_or_default(),
    })
}

/// A new web conversation of `bot`: its id and token.
async fn start_chat(client: &reqwest::Client, base: &str, bot: &str) -> Result<(String, String), String> {
    let r = client.post(format!("{base}/api/bots/{bot}/conversations")).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.map_err(|e| format!("{status}: {e}"))?;
    match (v["conversation"].as_str(), v["token"].as_str()) {
        (Some(id), Some(token)) => Ok((id.to_string(), token.to_string())),
        _ => Err(format!("{status}: {v}")),
    }
}

/// A server that acknowledges every message and does nothing else: the baseline.
pub async fn baseline(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/api/bots/{bot}/conversations",
            post(|| async {
                (axum::http::StatusCode::CREATED, "{\"conversation\":\"baseline\",\"token\":\"baseline\"}")
            }),
        )
        .route(
            "/api/bots/{bot}/conversations/{conversation}/messages",
            post(|| async { (axum::http::StatusCode::ACCEPTED, "{\"event\":\"baseline\"}") }),
        )
        .route("/webhooks/{platform}/{bot}", post(|| async { "{}" }));
    axum::serve(listener, app).await
}
