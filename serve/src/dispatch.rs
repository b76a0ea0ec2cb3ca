//! The dispatcher: delivers platform replies from the reply queue through each platform's
//! API, within its rate limits.
//!
//! One task per platform bot, so a bot that is over its budget (or whose platform answers
//! 429) waits while every other bot keeps sending. Within a bot, a conversation's replies
//! go out in order, one at a time; different conversations go out concurrently. A reply
//! leaves the queue only once the platform accepted it (or refused it for good), so nothing
//! is dropped, and a delivered reply is never sent again. 5xx answers and unreachable servers
//! are retried with exponential back-off and jitter.

use super::metrics::Platformed;
use super::ports::{ApiResponse, Fut, Lease, PlatformClient, QueuedReply, RateLimiter, ReplyQueue, StoreError, Work};
use super::{ApiBases, Bot, Bots, Metrics};
use botc_runtime::clock::Clock;
use botc_runtime::platforms::limiter::Check;
use botc_runtime::platforms::{self, Call, Outcome, Platform};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The dispatcher role: the reply queue in, platform APIs out, within the send budgets.
pub struct Dispatcher {
    pub bots: Arc<Bots>,
    pub replies: Arc<dyn ReplyQueue>,
    pub limiter: Arc<dyn RateLimiter>,
    pub client: Arc<dyn PlatformClient>,
    /// Where each platform's API is.
    pub api: ApiBases,
    pub metrics: Arc<Metrics>,
    /// Monotonic time for back-off and budgets; the time of day for Discord's token age.
    pub clock: Arc<dyn Clock>,
}

/// Sends in flight per bot.
const IN_FLIGHT: usize = 64;
/// Waiting replies a bot's task looks at per round.
const WINDOW: usize = 512;

/// Calls platform APIs over HTTP(S).
pub struct HttpClient(reqwest::Client);

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient(reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default())
    }
}

impl PlatformClient for HttpClient {
    fn call(&self, call: Call) -> Fut<'_, Result<ApiResponse, String>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?;
            let mut req = self.0.request(method, &call.url).json(&call.body);
            for (k, v) in &call.headers {
                req = req.header(*k, v);
            }
            // Errors are described without the URL: Telegram's carries the bot token.
            let resp = req.send().await.map_err(describe)?;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = resp.bytes().await.map_err(describe)?.to_vec();
            Ok(ApiResponse { status, retry_after, body })
        })
    }
}

fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

/// The budgets one reply must fit in: the bot's and its conversation's.
pub fn checks(bot: &Bot, key: &str) -> [Check; 2] {
    let p = bot.platform.name();
    [
        Check { key: format!("{p}:{}", bot.id), limit: bot.per_bot },
        Check { key: format!("{p}:{key}"), limit: bot.per_conversation },
    ]
}

impl Dispatcher {
    /// Delivers one bot's replies while `lease` (on [`Work::Replies`] for the bot) holds.
    pub async fn run(self: Arc<Self>, lease: Lease) {
        let Work::Replies(bot) = &lease.work else { return };
        let bot = bot.clone();
        let Some(b) = self.bots.get(&bot) else { return };
        let lease = Arc::new(lease);
        let platform = b.platform.name();
        let mut tasks = tokio::task::JoinSet::new();
        // Conversations with a send in flight, and how earlier attempts at a reply went.
        let mut busy: HashSet<String> = HashSet::new();
        let mut progress: HashMap<u64, Progress> = HashMap::new();
        // The oldest waiting replies, read from the queue when it may have changed.
        let mut window: Vec<(u64, QueuedReply)> = Vec::new();
        let mut stale = true;
        let mut full = false;
        loop {
            let queued = self.replies.queued();
            if stale {
                match self.replies.waiting(&lease, WINDOW).await {
                    Ok(w) => {
                        full = w.len() == WINDOW;
                        window = w;
                        stale = false;
                    }
                    Err(StoreError::Fenced(_)) => return,
                    Err(e) => tracing::error!(bot = %b.id, error = %e, "cannot read the reply queue"),
                }
            }
            let now = self.clock.monotonic();
            let mut wake = now + Duration::from_secs(5);
            let mut seen: HashSet<&str> = HashSet::new();
            for (position, r) in &window {
                // Only a conversation's oldest reply may go, and only when none is out.
                if !seen.insert(r.key.as_str()) || busy.contains(&r.key) || tasks.len() >= IN_FLIGHT {
                    continue;
                }
                if let Some(t) = progress.get(position).and_then(|p| p.not_before)
                    && t > now
                {
                    wake = wake.min(t);
                    continue;
                }
                match self.limiter.acquire(&checks(&b, &r.key)).await {
                    Ok(()) => {
                        busy.insert(r.key.clone());
                        let skip = progress.get(position).map_or(0, |p| p.made);
                        tasks.spawn(self.clone().deliver(lease.clone(), *position, r.clone(), skip));
                    }
                    Err(wait) => wake = wake.min(now + wait),
                }
            }
            tokio::select! {
                _ = queued => stale = true,
                _ = self.clock.sleep(wake.saturating_sub(now)) => {}
                Some(first) = tasks.join_next() => {
                    // Take every finished send at once, then look at the window again.
                    let mut finished = vec![first];
                    while let Some(more) = tasks.try_join_next() {
                        finished.push(more);
                    }
                    for (position, reply, done, outcome) in finished.into_iter().flatten() {
                        busy.remove(&reply.key);
                        match outcome {
                            Outcome::Sent | Outcome::Failed(_) => {
                                let metric = if outcome == Outcome::Sent { Platformed::Delivered } else { Platformed::Failed };
                                self.metrics.count(metric, platform);
                                if let Outcome::Failed(why) = &outcome {
                                    tracing::error!(bot = %b.id, reply = %reply.id, error = %why, "the platform refused a reply for good; it is dropped");
                                }
                                progress.remove(&position);
                                window.retain(|(p, _)| *p != position);
                            }
                            Outcome::RateLimited(wait) => {
                                self.metrics.count(Platformed::RateLimited, platform);
                                tracing::warn!(bot = %b.id, wait_ms = wait.as_millis() as u64, "the platform asked to slow down");
                                self.limiter.penalize(&checks(&b, &reply.key), wait).await;
                                progress.entry(position).or_default().made = done;
                            }
                            Outcome::Retry(why) => {
                                self.metrics.count(Platformed::Retried, platform);
                                let p = progress.entry(position).or_default();
                                p.tries += 1;
                                p.made = done;
                                let delay = super::backoff(p.tries);
                                p.not_before = Some(self.clock.monotonic() + delay);
                                tracing::warn!(bot = %b.id, reply = %reply.id, attempt = p.tries, error = %why, retry_in_ms = delay.as_millis() as u64, "reply not delivered; retrying");
                            }
                        }
                    }
                    // More may wait behind a window that was full.
                    if full && window.len() < WINDOW / 2 {
                        stale = true;
                    }
                }
            }
        }
    }
}

/// How earlier attempts at one reply went.
#[derive(Default)]
struct Progress {
    /// Calls already made (a retry does not repeat the parts that went out).
    made: usize,
    /// Failed attempts (server errors, unreachable).
    tries: u32,
    /// On the clock's monotonic time.
    not_before: Option<Duration>,
}

impl Dispatcher {
    /// Removes a reply from the queue, retrying until the store takes it: a reply that stays
    /// would be sent again. (Once the lease is lost, the reply is the new holder's.)
    async fn forget(&self, lease: &Lease, position: u64) {
        let mut failures = 0;
        loop {
            match self.replies.delivered(lease, position).await {
                Ok(()) => return,
                Err(StoreError::Fenced(work)) => {
                    tracing::warn!(work = %work, position, "lease lost before a delivered reply was forgotten; it may be sent again");
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(work = %lease.work, error = %e, "cannot mark a reply delivered; retrying");
                    self.clock.sleep(super::backoff(failures)).await;
                }
            }
        }
    }

    /// Makes a reply's calls in order, skipping the first `skip` (made by an earlier attempt).
    /// Returns how many calls have been made in all, and how the last one went.
    async fn deliver(
        self: Arc<Self>,
        lease: Arc<Lease>,
        position: u64,
        r: QueuedReply,
        skip: usize,
    ) -> (u64, QueuedReply, usize, Outcome) {
        let Some(b) = self.bots.get(&r.bot) else {
            return (position, r.clone(), skip, Outcome::Failed(format!("no bot `{}`", r.bot)));
        };
        let token = b.secrets.token.as_ref().map(|t| t.expose()).unwrap_or_default();
        let api = &self.api;
        let calls = match b.platform {
            Platform::Telegram => platforms::telegram::calls(&api.telegram, token, &r.reply),
            Platform::Slack => platforms::slack::calls(&api.slack, token, &r.reply),
            Platform::Discord => platforms::discord::calls(&api.discord, token, &r.reply, self.clock.unix()),
            Platform::Web => Ok(Vec::new()),
        };
        let calls = match calls {
            Ok(c) => c,
            Err(e) => {
                self.forget(&lease, position).await;
                return (position, r, skip, Outcome::Failed(e));
            }
        };
        let mut done = skip;
        for call in calls.into_iter().skip(skip) {
            let outcome = match self.client.call(call).await {
                Ok(resp) => {
                    let header = resp.retry_after.as_deref();
                    match b.platform {
                        Platform::Telegram => platforms::telegram::outcome(resp.status, header, &resp.body),
                        Platform::Slack => platforms::slack::outcome(resp.status, header, &resp.body),
                        Platform::Discord | Platform::Web => {
                            platforms::discord::outcome(resp.status, header, &resp.body)
                        }
                    }
                }
                Err(e) => Outcome::Retry(e),
            };
            if outcome != Outcome::Sent {
                if let Outcome::Failed(_) = outcome {
                    self.forget(&lease, position).await;
                }
                return (position, r, done, outcome);
            }
            done += 1;
        }
        // Forgotten here, so many sends' queue updates share one store commit.
        self.forget(&lease, position).await;
        (position, r, done, Outcome::Sent)
    }
}
