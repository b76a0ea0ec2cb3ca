//! The small roles around the workers: the timer scheduler, which moves due timers onto the
//! bus; the outbox runner, which performs flows' http requests and publishes each response
//! as an event; and the history shipper. Each works only through its ports, so they survive
//! restarts: timers, unfinished requests and unshipped history are in the store, not in
//! memory.

use super::Event;
use super::Metrics;
use super::ports::{HistoryQueue, HistorySink, Lease, Outbox, OutboxItem, SessionStore, StoreError, TimerStore};
use botc_runtime::clock::Clock;
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The timer scheduler: moves due timers onto the bus and forgets idle conversations.
pub struct Scheduler {
    pub timers: Arc<dyn TimerStore>,
    /// To forget idle conversations.
    pub sessions: Arc<dyn SessionStore>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Conversations idle this long are forgotten; `None` keeps them.
    pub forget_idle: Option<Duration>,
}

const HOUR: Duration = Duration::from_secs(3600);
/// How often idle conversations are looked for.
const SWEEP: Duration = Duration::from_secs(60);

impl Scheduler {
    /// Publishes timers as they fall due, and once a minute forgets conversations idle for
    /// longer than the configured time, while `lease` (on the timers) holds.
    pub async fn run(self: Arc<Self>, lease: Lease) {
        let mut sweep_at = self.clock.monotonic();
        let mut failures = 0;
        loop {
            if let Some(idle) = self.forget_idle
                && self.clock.monotonic() >= sweep_at
            {
                sweep_at = self.clock.monotonic() + SWEEP;
                self.forget_idle(self.clock.unix().saturating_sub(idle.as_secs())).await;
            }
            // Listen before looking, so a timer scheduled meanwhile is not missed.
            let scheduled = self.timers.scheduled();
            let wait = match self.timers.fire_due(&lease, self.clock.unix()).await {
                Ok(n) => {
                    failures = 0;
                    self.metrics.timers_fired.inc_by(n as u64);
                    match self.timers.next_due().await {
                        // Timers are kept in whole seconds: wake at the start of the second due.
                        Ok(Some(at)) => {
                            let now_ms = self.clock.unix_ms();
                            Duration::from_millis(at.saturating_mul(1000).saturating_sub(now_ms)).min(HOUR)
                        }
                        Ok(None) => HOUR,
                        Err(_) => super::backoff(1),
                    }
                }
                Err(StoreError::Fenced(_)) => return,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "cannot fire due timers; retrying");
                    super::backoff(failures)
                }
            };
            let wait = if self.forget_idle.is_some() { wait.min(SWEEP) } else { wait };
            tokio::select! {
                _ = self.clock.sleep(wait) => {}
                _ = scheduled => {}
            }
        }
    }

    /// Forgets every conversation idle since `before`, a bounded number per store call.
    pub async fn forget_idle(&self, before: u64) {
        const STEP: usize = 1000;
        loop {
            match self.sessions.forget_idle(before, STEP).await {
                Ok(n) => {
                    self.metrics.forgotten.inc_by(n as u64);
                    if n > 0 {
                        tracing::info!(conversations = n, "forgot idle conversations");
                    }
                    if n < STEP {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot forget idle conversations");
                    return;
                }
            }
        }
    }
}

/// The outbox runner: performs flows' http requests and publishes each response as an event.
pub struct OutboxRunner {
    pub outbox: Arc<dyn Outbox>,
    pub clock: Arc<dyn Clock>,
    pub client: reqwest::Client,
    /// Answers for requests that must not reach the network (`[[http_mocks]]`).
    pub mocks: Arc<[HttpMock]>,
}

/// A canned answer for a flow's `http` request (a demo or staging server whose flows call
/// APIs it must not, or cannot, reach): requests with this method and URL get this status
/// and body, and never reach the network.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpMock {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL, as the flow renders it; without a `?`, it answers every query on its path.
    pub url: String,
    pub status: u16,
    pub body: Json,
}

impl HttpMock {
    fn answers(&self, method: &str, url: &str) -> bool {
        let path = |u: &str| u.split_once('?').map_or(u, |(p, _)| p).to_string();
        self.method.eq_ignore_ascii_case(method)
            && (self.url == url || (!self.url.contains('?') && self.url == path(url)))
    }
}

impl OutboxRunner {
    /// Performs outbox items while `lease` (on the outbox) holds: at least once, since an
    /// item whose response was not yet recorded when its runner stopped is performed again.
    pub async fn run(self: Arc<Self>, lease: Lease) {
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let added = self.outbox.added();
            match self.outbox.pending(&lease, 256).await {
                Ok(items) => {
                    for item in items {
                        if running.insert(item.id.clone()) {
                            tasks.spawn(self.clone().perform(item));
                        }
                    }
                }
                Err(StoreError::Fenced(_)) => return,
                Err(e) => tracing::error!(error = %e, "cannot read the outbox; retrying"),
            }
            tokio::select! {
                _ = added => {}
                Some(Ok((id, event))) = tasks.join_next() => {
                    // Until this succeeds the item stays in the outbox, so it is never lost.
                    let mut failures = 0;
                    loop {
                        let e = match self.outbox.complete(&lease, id.clone(), event.clone()).await {
                            Ok(()) => break,
                            // The new holder performs it again.
                            Err(StoreError::Fenced(_)) => return,
                            Err(e) => e,
                        };
                        failures += 1;
                        tracing::error!(error = %e, "cannot record an http response; retrying");
                        self.clock.sleep(super::backoff(failures)).await;
                    }
                    running.remove(&id);
                }
                _ = self.clock.sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn perform(self: Arc<Self>, item: OutboxItem) -> (String, Event) {
        let r = &item.request;
        if let Some(mock) = self.mocks.iter().find(|m| m.answers(&r.method, &r.url)) {
            tracing::debug!(method = %r.method, status = mock.status, "a flow's http request was answered by a mock");
            let event = Event {
                kind: botc_runtime::vm::Input::Http { status: mock.status, body: mock.body.clone() },
                received_at: self.clock.unix(),
                ..item.result
            };
            return (item.id, event);
        }
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.client.request(method, &r.url).timeout(Duration::from_secs(10));
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &r.body {
            req = req.body(b.clone());
        }
        let (status, body) = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Json::String(text)))
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "a flow's http request failed");
                (0, Json::Null)
            }
        };
        let event = Event {
            kind: botc_runtime::vm::Input::Http { status, body },
            received_at: self.clock.unix(),
            ..item.result
        };
        (item.id, event)
    }
}

/// The history shipper: copies committed history records into the history sink.
pub struct HistoryShipper {
    pub queue: Arc<dyn HistoryQueue>,
    pub sink: Arc<dyn HistorySink>,
    pub clock: Arc<dyn Clock>,
}

impl HistoryShipper {
    /// Ships history as it is committed, forever.
    pub async fn run(self: Arc<Self>) {
        let mut failures = 0;
        loop {
            let recorded = self.queue.recorded();
            match self.ship().await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = recorded => {}
                        _ = self.clock.sleep(Duration::from_secs(5)) => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "cannot ship history; retrying");
                    self.clock.sleep(super::backoff(failures)).await;
                }
            }
        }
    }

    /// Ships what is left of the history queue, for a clean stop (whatever is left after
    /// `within` is shipped at the next start).
    pub async fn flush(&self, within: Duration) {
        let _ = tokio::time::timeout(within, async { while matches!(self.ship().await, Ok(n) if n > 0) {} }).await;
    }

    /// Copies the oldest unshipped history records into the sink and then lets the store
    /// forget them; returns how many. A crash in between writes them again; the sink keeps
    /// one of each.
    async fn ship(&self) -> Result<usize, StoreError> {
        let records = self.queue.unshipped(512).await?;
        let Some(&(upto, _)) = records.last() else { return Ok(0) };
        let n = records.len();
        self.sink.record(records.into_iter().map(|(_, r)| r).collect()).await?;
        self.queue.shipped(upto).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::HttpMock;

    #[test]
    fn a_mock_answers_its_method_and_url_and_without_a_query_every_query_on_its_path() {
        let mock =
            |url: &str| HttpMock { method: "GET".into(), url: url.into(), status: 200, body: serde_json::Value::Null };
        let path = mock("https://api.example.com/v1/slots");
        assert!(path.answers("GET", "https://api.example.com/v1/slots"));
        assert!(path.answers("get", "https://api.example.com/v1/slots?day=1&hour=2"));
        assert!(!path.answers("POST", "https://api.example.com/v1/slots"));
        assert!(!path.answers("GET", "https://api.example.com/v1/slotsx"));
        assert!(!path.answers("GET", "https://api.example.com/v1"));
        let exact = mock("https://api.example.com/v1/slots?day=1");
        assert!(exact.answers("GET", "https://api.example.com/v1/slots?day=1"));
        assert!(!exact.answers("GET", "https://api.example.com/v1/slots?day=2"));
        assert!(!exact.answers("GET", "https://api.example.com/v1/slots"));
    }
}
