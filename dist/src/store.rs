//! The serve ports on Kafka and Redis together: what `botc worker`, `botc gateway`,
//! `botc dispatcher` and `botc scheduler` use instead of the embedded store.
//!
//! A batch is committed in the order the ports module requires, so a crash anywhere is
//! repaired by doing the batch again: the lease and every session's expected state are
//! checked first (a fenced or conflicting batch writes nothing); then the effects, each
//! kept once by its id; then each session by compare-and-set (one script per session, as
//! Redis Cluster cannot compare across slots); the partition's position last, fenced by
//! the lease's epoch in the same script.

use crate::kafka::Kafka;
use crate::redis::{Claim, Redis};
use crate::wake::{Kind, Wakeups};
use botc_serve::Entry;
use botc_serve::Event;
use botc_serve::ports::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest a gateway's claim on a redelivered event holds if it dies while publishing.
const CLAIM_MS: u64 = 30_000;
/// Longest a gateway waits for Redis's redelivery check.
const CLAIM_WAIT: Duration = Duration::from_millis(500);
/// Due timers moved per shard per call.
const FIRE_MAX: usize = 1_000;

pub struct Distributed {
    pub redis: Redis,
    pub kafka: Kafka,
    /// Wakes this process's waiters when another process added work (`wake.rs`).
    pub wake: Arc<Wakeups>,
}

impl Distributed {
    pub fn new(redis: Redis, kafka: Kafka) -> Distributed {
        Distributed { redis, kafka, wake: Arc::default() }
    }

    /// The channel wake-ups travel on.
    fn channel(&self) -> String {
        self.redis.keys.plain_name("wake")
    }

    /// Starts listening for other processes' wake-ups (without it, waiters look again every
    /// few seconds).
    pub fn listen(&self, addr: &crate::RedisAddr) {
        self.wake.listen(addr, self.channel());
    }

    /// Tells every process what kinds of work `b` added.
    async fn announce(&self, b: &Batch) {
        let mut kinds = Vec::new();
        for (added, kind) in [
            (!b.messages.is_empty(), Kind::Transcript),
            (!b.replies.is_empty(), Kind::Replies),
            (!b.outbox.is_empty(), Kind::Outbox),
            (b.timers.iter().any(|t| matches!(t, TimerChange::Start { .. })), Kind::Timers),
            (!b.history.is_empty(), Kind::History),
        ] {
            if added {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return;
        }
        let published = redis::cmd("PUBLISH")
            .arg(self.channel())
            .arg(Wakeups::payload(&kinds))
            .query_async::<i64>(&mut self.redis.conn.clone())
            .await;
        if let Err(e) = published {
            tracing::debug!(error = %e, "cannot announce a batch; waiters find it a little later");
        }
    }

    async fn commit_batch(&self, b: &Batch) -> Result<(), StoreError> {
        let (held, checked) = tokio::join!(self.redis.holds(&b.lease), self.redis.conflicts(&b.sessions));
        held?;
        let (conflicts, unreadable) = checked?;
        if !conflicts.is_empty() {
            return Err(StoreError::Conflict(conflicts));
        }
        let (m, r, t, o, h, q) = tokio::join!(
            self.redis.add_messages(&b.messages),
            self.redis.add_replies(&b.replies),
            self.redis.change_timers(&b.timers),
            self.redis.add_outbox(&b.outbox),
            self.redis.add_history(&b.history),
            self.redis.quarantine(&b.quarantined),
        );
        m?;
        r?;
        t?;
        o?;
        h?;
        q?;
        let failed = self.redis.write_sessions(&b.sessions, &unreadable).await?;
        if !failed.is_empty() {
            return Err(StoreError::Conflict(failed));
        }
        // On the replicas before the position moves: a failover then loses nothing the
        // position counts as done.
        self.redis.replicated().await?;
        self.redis.advance(&b.lease, b.next_offset).await?;
        self.announce(b).await;
        Ok(())
    }
}

impl Leases for Distributed {
    fn acquire<'a>(
        &'a self,
        work: Work,
        holder: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> Fut<'a, Result<Option<Lease>, StoreError>> {
        Box::pin(async move { self.redis.acquire(&work, holder, now_ms, ttl.as_millis() as u64).await })
    }
    fn renew<'a>(&'a self, lease: &'a Lease, now_ms: u64, ttl: Duration) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let r = self.redis.renew(lease, now_ms, ttl.as_millis() as u64).await;
            if let (Err(StoreError::Fenced(_)), Some(p)) = (&r, lease.partition()) {
                self.kafka.forget(p);
            }
            r
        })
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(p) = lease.partition() {
                self.kafka.forget(p);
            }
            self.redis.release(lease).await
        })
    }
    fn members<'a>(
        &'a self,
        group: &'a str,
        holder: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> Fut<'a, Result<usize, StoreError>> {
        Box::pin(self.redis.members(group, holder, now_ms, ttl.as_millis() as u64))
    }
}

impl Bus for Distributed {
    fn partitions(&self) -> usize {
        self.kafka.config.partitions
    }
    fn partition_of(&self, key: &str) -> usize {
        botc_serve::partition_of(key, self.kafka.config.partitions)
    }
    fn publish(&self, events: Vec<Event>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move { self.kafka.publish(&events).await })
    }
    fn publish_once(&self, event: Event, ttl: Duration) -> Fut<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            // Redis answering slowly or not at all must not turn webhooks away (platforms give
            // up on a webhook after seconds): then the event is published without the
            // redelivery check, at the risk of a duplicate rather than of a lost message.
            let claimed = match tokio::time::timeout(
                CLAIM_WAIT,
                self.redis.claim(&event.id, event.received_at, CLAIM_MS),
            )
            .await
            {
                Ok(Ok(claim)) => Some(claim),
                Ok(Err(e)) => {
                    tracing::warn!(event = %event.id, error = %e, "cannot check for a redelivery; publishing anyway");
                    None
                }
                Err(_) => {
                    tracing::warn!(event = %event.id, "redis is slow to check for a redelivery; publishing anyway");
                    None
                }
            };
            match claimed {
                Some(Claim::Duplicate) => return Ok(false),
                Some(Claim::Busy) => {
                    return Err(StoreError::Io("another gateway is publishing this event right now".into()));
                }
                Some(Claim::Fresh) | None => {}
            }
            match self.kafka.publish(std::slice::from_ref(&event)).await {
                Ok(()) => {
                    if claimed.is_some() {
                        let expires = event.received_at.saturating_add(ttl.as_secs());
                        // The event is durable: acknowledge it whatever happens to the mark
                        // (a mark left pending lapses after CLAIM_MS).
                        if let Err(e) = self.redis.settle(&event.id, expires, ttl.as_millis() as u64).await {
                            tracing::warn!(event = %event.id, error = %e, "cannot record a published event's id; a redelivery may be taken again");
                        }
                    }
                    Ok(true)
                }
                Err(e) => {
                    // The platform retries; that retry must be taken.
                    if claimed.is_some()
                        && let Err(u) = self.redis.unclaim(&event.id).await
                    {
                        tracing::warn!(event = %event.id, error = %u, "cannot release a redelivery claim; it lapses by itself");
                    }
                    Err(e)
                }
            }
        })
    }
    fn committed<'a>(&'a self, lease: &'a Lease) -> Fut<'a, Result<u64, StoreError>> {
        Box::pin(self.redis.committed(lease))
    }
    fn fetch<'a>(&'a self, lease: &'a Lease, from: u64, max: usize) -> Fut<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            let Some(p) = lease.partition() else { return Err(StoreError::Fenced(lease.work.clone())) };
            if p >= self.kafka.config.partitions {
                return Err(StoreError::NoPartition(p));
            }
            if let Err(e) = self.redis.holds(lease).await {
                self.kafka.forget(p);
                return Err(e);
            }
            self.kafka.fetch(p, lease.epoch, from, max).await
        })
    }
    fn depth(&self) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let (ends, positions) = tokio::join!(self.kafka.ends(), self.redis.positions(self.kafka.config.partitions));
            Ok(ends?.iter().zip(positions?).map(|(end, at)| end.saturating_sub(at)).sum())
        })
    }
    fn ready(&self) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.redis.ping().await?;
            self.kafka.check().await.map_err(StoreError::Io)
        })
    }
}

impl SessionStore for Distributed {
    fn load<'a>(&'a self, keys: &'a [String]) -> Fut<'a, Result<HashMap<String, Found>, StoreError>> {
        Box::pin(self.redis.load(keys))
    }
    fn count(&self) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(async move { self.redis.count_sessions().await })
    }
    fn scan<'a>(&'a self, prefix: &'a str, max: usize) -> Fut<'a, Result<Vec<(String, Stored)>, StoreError>> {
        Box::pin(self.redis.scan_sessions(prefix, max))
    }
    /// Redis forgets idle conversations by itself: their keys expire.
    fn forget_idle(&self, _before: u64, _max: usize) -> Fut<'_, Result<usize, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}

impl Committer for Distributed {
    fn commit(&self, batch: Arc<Batch>) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let r = self.commit_batch(&batch).await;
            if let (Err(StoreError::Fenced(_)), Some(p)) = (&r, batch.lease.partition()) {
                self.kafka.forget(p);
            }
            r
        })
    }
}

impl TimerStore for Distributed {
    fn fire_due<'a>(&'a self, lease: &'a Lease, now: u64) -> Fut<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            self.redis.holds(lease).await?;
            let due = self.redis.due_timers(now, FIRE_MAX).await?;
            if due.is_empty() {
                return Ok(0);
            }
            let events: Vec<Event> = due.iter().map(|(_, _, _, e)| e.clone()).collect();
            // On the bus first: a crash before the timers are forgotten fires them again
            // (same ids), which the sessions ignore.
            self.kafka.publish(&events).await?;
            let fired: Vec<(usize, String, u64)> = due.into_iter().map(|(s, m, at, _)| (s, m, at)).collect();
            self.redis.timers_fired(&fired).await?;
            Ok(fired.len())
        })
    }
    fn next_due(&self) -> Fut<'_, Result<Option<u64>, StoreError>> {
        Box::pin(async move { Ok(self.redis.timer_stats().await?.0) })
    }
    fn pending(&self) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.redis.timer_stats().await?.1) })
    }
    fn scheduled(&self) -> Fut<'_, ()> {
        self.wake.wait(Kind::Timers)
    }
}

impl Transcript for Distributed {
    fn after<'a>(&'a self, key: &'a str, seq: u64) -> Fut<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.redis.transcript(key, seq))
    }
    /// Any transcript change wakes every waiter here: wake-ups between processes carry the
    /// kind of work, not the conversation.
    fn changed<'a>(&'a self, _key: &'a str) -> Fut<'a, ()> {
        self.wake.wait(Kind::Transcript)
    }
}

impl Outbox for Distributed {
    fn pending<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<OutboxItem>, StoreError>> {
        Box::pin(self.redis.outbox_pending(lease, max))
    }
    fn complete<'a>(&'a self, lease: &'a Lease, id: String, result: Event) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(position) = self.redis.outbox_find(lease, &id).await? else { return Ok(()) };
            // Published before the item is forgotten: a crash between the two performs the
            // request again and publishes a second response with the same id, which the
            // session ignores (it no longer waits for one).
            self.kafka.publish(std::slice::from_ref(&result)).await?;
            self.redis.outbox_done(position).await
        })
    }
    fn added(&self) -> Fut<'_, ()> {
        self.wake.wait(Kind::Outbox)
    }
}

impl ReplyQueue for Distributed {
    fn waiting<'a>(&'a self, lease: &'a Lease, max: usize) -> Fut<'a, Result<Vec<(u64, QueuedReply)>, StoreError>> {
        Box::pin(self.redis.waiting(lease, max))
    }
    fn delivered<'a>(&'a self, lease: &'a Lease, position: u64) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(self.redis.delivered(lease, position))
    }
    fn queued(&self) -> Fut<'_, ()> {
        self.wake.wait(Kind::Replies)
    }
    fn depth(&self) -> Fut<'_, Result<u64, StoreError>> {
        Box::pin(self.redis.replies_depth())
    }
}

impl HistoryQueue for Distributed {
    fn unshipped(&self, max: usize) -> Fut<'_, Result<Vec<(u64, HistoryRecord)>, StoreError>> {
        Box::pin(self.redis.unshipped(max))
    }
    fn shipped(&self, upto: u64) -> Fut<'_, Result<(), StoreError>> {
        Box::pin(self.redis.shipped(upto))
    }
    fn recorded(&self) -> Fut<'_, ()> {
        self.wake.wait(Kind::History)
    }
}
