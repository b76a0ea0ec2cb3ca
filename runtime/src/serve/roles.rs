//! The small roles around the workers: the timer scheduler, which moves due timers onto the
//! bus, and the outbox runner, which performs flows' http requests and publishes each
//! response as an event. Both work only through the ports, so they survive restarts: timers
//! and unfinished requests are in the store, not in memory.

use super::http::Shared;
use super::ports::OutboxItem;
use super::{Event, now};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Publishes timers as they fall due, forever; and once a minute forgets conversations
/// idle for longer than the configured time.
pub async fn timers(shared: Arc<Shared>) {
    let mut sweep_at = std::time::Instant::now();
    loop {
        if let Some(idle) = shared.forget_idle
            && std::time::Instant::now() >= sweep_at
        {
            sweep_at = std::time::Instant::now() + Duration::from_secs(60);
            forget_idle(&shared, now().saturating_sub(idle.as_secs())).await;
        }
        // Listen before looking, so a timer scheduled meanwhile is not missed.
        let scheduled = shared.ports.timers.scheduled();
        match shared.ports.timers.fire_due(now()).await {
            Ok(n) => {
                shared.metrics.timers_fired.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "cannot fire due timers; retrying in a second"),
        }
        let wait = match shared.ports.timers.next_due() {
            Ok(Some(at)) => Duration::from_secs(at.saturating_sub(now())).clamp(Duration::from_millis(200), HOUR),
            Ok(None) => HOUR,
            Err(_) => Duration::from_secs(1),
        };
        let wait = if shared.forget_idle.is_some() { wait.min(Duration::from_secs(60)) } else { wait };
        let _ = tokio::time::timeout(wait, scheduled).await;
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Forgets every conversation idle since `before`, a bounded number per store call.
pub async fn forget_idle(shared: &Shared, before: u64) {
    const STEP: usize = 1000;
    loop {
        match shared.ports.sessions.forget_idle(before, STEP).await {
            Ok(n) => {
                shared.metrics.forgotten.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
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

/// Performs outbox items (at least once: an item whose response was not yet recorded when
/// botc stopped is performed again after the restart).
pub async fn outbox(shared: Arc<Shared>) {
    let client = reqwest::Client::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let added = shared.ports.outbox.added();
        match shared.ports.outbox.pending(256) {
            Ok(items) => {
                for item in items {
                    if running.insert(item.id.clone()) {
                        tasks.spawn(perform(client.clone(), item));
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the outbox; retrying"),
        }
        tokio::select! {
            _ = added => {}
            Some(Ok((id, event))) = tasks.join_next() => {
                // Until this succeeds the item stays in the outbox, so it is never lost.
                while let Err(e) = shared.ports.outbox.complete(id.clone(), event.clone()).await {
                    tracing::error!(error = %e, "cannot record an http response; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                running.remove(&id);
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn perform(client: reqwest::Client, item: OutboxItem) -> (String, Event) {
    let r = &item.request;
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, &r.url).timeout(Duration::from_secs(10));
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
            tracing::warn!(url = %r.url, error = %e, "http request failed");
            (0, Json::Null)
        }
    };
    let event = Event { kind: crate::vm::Input::Http { status, body }, received_at: now(), ..item.result };
    (item.id, event)
}

/// Ships what is left of the history queue, for a clean stop (whatever is left after
/// `within` is shipped at the next start).
pub async fn flush_history(shared: &Shared, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if !matches!(ship(shared).await, Ok(n) if n > 0) {
            return;
        }
    }
}

/// Copies the oldest unshipped history records into the sink and then lets the store forget
/// them; returns how many. A crash in between writes them again; the sink keeps one of each.
async fn ship(shared: &Shared) -> Result<usize, super::ports::StoreError> {
    let records = shared.ports.history_queue.unshipped(512)?;
    let Some(&(upto, _)) = records.last() else { return Ok(0) };
    let n = records.len();
    shared.ports.history.record(records.into_iter().map(|(_, r)| r).collect()).await?;
    shared.ports.history_queue.shipped(upto).await?;
    Ok(n)
}

/// Ships history as it is committed, forever.
pub async fn history(shared: Arc<Shared>) {
    loop {
        let recorded = shared.ports.history_queue.recorded();
        match ship(&shared).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), recorded).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot ship history; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
