//! Wake-ups between processes: after a batch commits, its worker publishes on one Redis
//! channel which kinds of work it added (transcript entries, replies, outbox items, timers,
//! history); every process listens on one subscription and wakes its local waiters. Redis
//! Cluster carries a classic PUBLISH to every node, so one node is enough to listen on.
//! A message lost while the subscription reconnects costs at most [`FALLBACK`]: every waiter
//! also wakes by itself that often, and a reconnect wakes them all.

use crate::conn::RedisAddr;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest a waiter sleeps without a wake-up.
pub const FALLBACK: Duration = Duration::from_secs(5);

/// One kind of work that may have been added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Transcript,
    Replies,
    Outbox,
    Timers,
    History,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Transcript, Kind::Replies, Kind::Outbox, Kind::Timers, Kind::History];

    fn letter(self) -> char {
        match self {
            Kind::Transcript => 't',
            Kind::Replies => 'r',
            Kind::Outbox => 'o',
            Kind::Timers => 's',
            Kind::History => 'h',
        }
    }
}

#[derive(Default)]
pub struct Wakeups {
    notify: [Notify; 5],
}

impl Wakeups {
    fn slot(&self, kind: Kind) -> &Notify {
        &self.notify[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
    }

    /// Completes when work of `kind` may have been added since this was called (or after
    /// [`FALLBACK`]).
    pub fn wait(&self, kind: Kind) -> botc_serve::ports::Fut<'_, ()> {
        let notified = self.slot(kind).notified();
        Box::pin(async move {
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(FALLBACK) => {}
            }
        })
    }

    fn wake(&self, letters: &str) {
        for k in Kind::ALL {
            if letters.contains(k.letter()) {
                self.slot(k).notify_waiters();
            }
        }
    }

    /// The payload that says these kinds were added.
    pub fn payload(kinds: &[Kind]) -> String {
        kinds.iter().map(|k| k.letter()).collect()
    }

    /// Listens on `channel` until the process ends, reconnecting with back-off.
    pub fn listen(self: &Arc<Self>, addr: &RedisAddr, channel: String) {
        let urls = match addr {
            RedisAddr::Single(url) => vec![url.clone()],
            RedisAddr::Cluster(seeds) => seeds.clone(),
        };
        let me = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let url = &urls[failures as usize % urls.len().max(1)];
                match subscribe(url, &channel).await {
                    Ok(mut messages) => {
                        failures = 0;
                        // Anything published while this was not listening is seen now.
                        me.wake("trosh");
                        while let Some(m) = messages.next().await {
                            me.wake(&m.get_payload::<String>().unwrap_or_default());
                        }
                        tracing::warn!(channel = %channel, "the wake-up subscription ended; reconnecting");
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(channel = %channel, error = %e, "cannot subscribe to wake-ups; waiters poll meanwhile");
                        tokio::time::sleep(botc_serve::backoff(failures)).await;
                    }
                }
            }
        });
    }
}

async fn subscribe(url: &str, channel: &str) -> redis::RedisResult<redis::aio::PubSubStream> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.into_on_message())
}
