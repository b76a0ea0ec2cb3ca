//! `botc load`: an open-model load generator for the web-chat API. Requests are scheduled
//! at a fixed arrival rate and latency is measured from each request's *scheduled* time, so
//! a slow server cannot hide its queueing by slowing the generator down (no coordinated
//! omission). `botc load-baseline` is a bare server that only acknowledges, for the ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct Report {
    pub sent: usize,
    pub ok: usize,
    pub errors: usize,
    /// Of the errors, how many were 429: over the server's per-client limits.
    pub limited: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} in {:.2}s ({:.0}/s), accepted {}, errors {}, ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.sent as f64 / self.elapsed.as_secs_f64(),
            self.ok,
            self.errors,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )?;
        if self.limited > 0 {
            write!(
                f,
                "\n{} of the errors were 429: over the server's per-client limits. One load generator is one client: raise [limits] client_per_minute, client_burst, conversation_per_minute and conversation_burst in the server's botc.toml for load tests",
                self.limited
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

impl Target {
    /// The request for message `i` of a run, to conversation `c` (web: `chats[c]`), and the
    /// status that means it was accepted.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        client: &reqwest::Client,
        base: &str,
        bot: &str,
        run: u64,
        i: u64,
        c: u64,
        chats: &[(String, String)],
    ) -> (reqwest::RequestBuilder, u16) {
        match self {
            Target::Web => {
                let (id, token) = &chats[c as usize];
                let req = client
                    .post(format!("{base}/api/bots/{bot}/conversations/{id}/messages"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(r#"{"text": "hi"}"#);
                (req, 202)
            }
            Target::Telegram { secret } => {
                let body = format!(
                    r#"{{"update_id":{},"message":{{"message_id":{i},"from":{{"id":{c},"first_name":"Load"}},"chat":{{"id":{c},"type":"private"}},"text":"hi"}}}}"#,
                    run * 1_000_000_000 + i
                );
                let req = client
                    .post(format!("{base}/webhooks/telegram/{bot}"))
                    .header("x-telegram-bot-api-secret-token", secret.as_str())
                    .body(body);
                (req, 200)
            }
            Target::Slack { secret } => {
                let body = format!(
                    r#"{{"type":"event_callback","event_id":"Ev{run}x{i}","event":{{"type":"message","channel":"D{c}","channel_type":"im","user":"U{c}","text":"hi"}}}}"#
                );
                let ts = botc_runtime::clock::Clock::unix(&botc_runtime::clock::SystemClock::default()).to_string();
                let sig = botc_runtime::platforms::verify::slack_sign(secret.as_bytes(), &ts, body.as_bytes());
                let req = client
                    .post(format!("{base}/webhooks/slack/{bot}"))
                    .header("x-slack-request-timestamp", ts)
                    .header("x-slack-signature", sig)
                    .body(body);
                (req, 200)
            }
        }
    }
}

/// Sends `rate` requests per second for `secs` seconds to `base` (a botc serve URL),
/// spread over `conversations` conversations of `bot`.
pub async fn run(
    base: &str,
    bot: &str,
    target: Target,
    rate: u64,
    secs: u64,
    conversations: u64,
) -> Result<Report, String> {
    // Distinct per run (the clock's milliseconds, cut to nine digits so run × 10⁹ + i fits
    // Telegram's 64-bit update_id), so platform event ids are new each time.
    let clock = botc_runtime::clock::SystemClock::default();
    let run = botc_runtime::clock::Clock::unix_ms(&clock) % 1_000_000_000;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().expect("an http client");
    // Web conversations are issued by the server: start them all before the clock runs.
    let mut chats = Vec::new();
    if let Target::Web = target {
        for _ in 0..conversations.max(1) {
            match start_chat(&client, base, bot).await {
                Ok(chat) => chats.push(chat),
                Err(e) => {
                    return Err(format!("cannot start a conversation of `{bot}` at {base}: {e}"));
                }
            }
        }
    }
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limited = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A load generator measures real latency: it reads the real clock by design.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (req, ok) = target.request(&client, base, bot, run, i as u64, i as u64 % conversations.max(1), &chats);
        let (latencies, errors, limited) = (latencies.clone(), errors.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            match req.send().await {
                Ok(resp) if resp.status().as_u16() == ok => latencies.lock().await.push(scheduled.elapsed()),
                other => {
                    if other.is_ok_and(|r| r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS) {
                        limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let mut l = std::mem::take(&mut *latencies.lock().await);
    l.sort();
    let at =
        |q: f64| l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default();
    Ok(Report {
        sent: total,
        ok: l.len(),
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        limited: limited.load(std::sync::atomic::Ordering::Relaxed),
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        max: l.last().copied().unwrap_or_default(),
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
