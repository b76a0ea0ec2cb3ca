//! Keeps roles running. Each role runs in its own task under a supervisor: when it panics or
//! returns while botc is not stopping, the supervisor logs it, counts it
//! (`botc_role_restarts_total`), marks the role down (so `/readyz` says which) and starts it
//! again after a back-off. Nothing a role holds in memory is needed to restart it: its work
//! is in the store.
//!
//! Work that one process at a time may do is held under a lease ([`Holding::hold`]), so a
//! second copy of a role (another process, or this one restarted) waits or takes over
//! instead of doing the work twice.

use super::Metrics;
use super::ports::{Lease, Leases, StoreError, Work};
use botc_runtime::clock::Clock;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Which roles are down now, and for how many failures in a row.
#[derive(Default)]
pub struct Health {
    down: Mutex<BTreeMap<String, u32>>,
}

impl Health {
    /// The roles that are down, each with its failures in a row, for `/readyz`.
    pub fn down(&self) -> Vec<String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.iter().map(|(role, n)| format!("{role} (failed {n} time(s) in a row)")).collect()
    }

    fn set(&self, role: &str, failures: Option<u32>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match failures {
            Some(n) => down.insert(role.to_string(), n),
            None => down.remove(role),
        };
    }
}

/// How a role ends when botc stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStop {
    /// The role watches the stop signal itself and finishes what it is doing (workers
    /// finish their batch): wait for it.
    Finish,
    /// The role holds nothing unfinished worth waiting for: abort it.
    Abort,
}

/// What a supervisor needs besides the role.
#[derive(Clone)]
pub struct Supervision {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub stop: watch::Receiver<bool>,
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs the role `start` makes, again and again, until `stop` turns true. A role that ran
/// for a minute or more before failing starts again at the shortest back-off.
pub async fn supervise<F, Fut>(role: String, on_stop: OnStop, s: Supervision, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut stop = s.stop.clone();
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let started = s.clock.monotonic();
        let mut task = tokio::spawn(start());
        if failures > 0 {
            // Up again; a failure soon after marks it down again.
            s.health.set(&role, None);
        }
        let ended = tokio::select! {
            r = &mut task => r,
            _ = until_stopped(&mut stop) => {
                if on_stop == OnStop::Abort {
                    task.abort();
                }
                let _ = task.await;
                return;
            }
        };
        if *stop.borrow() {
            return;
        }
        if s.clock.monotonic().saturating_sub(started) >= std::time::Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        match ended {
            Ok(()) => tracing::error!(role = %role, "a role stopped by itself; restarting it"),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(role = %role, panic = %why, "a role panicked; restarting it");
            }
            Err(e) => tracing::error!(role = %role, error = %e, "a role failed; restarting it"),
        }
        s.metrics.restarted(&role);
        s.health.set(&role, Some(failures));
        tokio::select! {
            _ = s.clock.sleep(super::backoff(failures)) => {}
            _ = until_stopped(&mut stop) => return,
        }
    }
}

/// How long a lease lasts without renewal by default: how long work stays undone after its
/// holder died without a word, before another process takes it (`limits.lease_seconds`).
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// One kind of work split among the processes doing it (the bus partitions among the
/// workers): each process holds at most its fair share, `total / processes` rounded up, so a
/// worker started next to a busy one takes partitions over instead of waiting as a standby,
/// and a worker that dies leaves its partitions to the others.
pub struct Share {
    /// The group the processes count themselves in.
    pub group: String,
    /// Pieces of work in all.
    pub total: usize,
    held: std::sync::atomic::AtomicUsize,
    members: std::sync::atomic::AtomicUsize,
}

impl Share {
    pub fn new(group: &str, total: usize) -> Arc<Share> {
        Arc::new(Share {
            group: group.to_string(),
            total,
            held: Default::default(),
            members: std::sync::atomic::AtomicUsize::new(1),
        })
    }

    /// The most this process may hold now.
    pub fn limit(&self) -> usize {
        self.total.div_ceil(self.members.load(std::sync::atomic::Ordering::Relaxed).max(1))
    }

    /// Takes a place for one more piece, if within the share; the place is given back when
    /// dropped (also when the role holding it panics).
    fn take(&self) -> Option<Place<'_>> {
        let limit = self.limit();
        let taken = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| (h < limit).then_some(h + 1));
        taken.is_ok().then_some(Place(self))
    }

    fn give(&self) {
        let _ = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1));
    }

    /// Gives `place` back if this process holds more than its share: true when the caller
    /// should hand its piece over. (One atomic step, so two pieces never both leave for one
    /// place too many.)
    fn shed<'a>(&'a self, place: Place<'a>) -> Option<Place<'a>> {
        let limit = self.limit();
        if self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| (h > limit).then(|| h - 1)).is_ok() {
            std::mem::forget(place);
            None
        } else {
            Some(place)
        }
    }

    /// How many pieces this process holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

use std::sync::atomic::Ordering;

/// One piece of a [`Share`] taken; given back when dropped.
struct Place<'a>(&'a Share);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.give();
    }
}

/// What a role needs to hold a lease.
#[derive(Clone)]
pub struct Holding {
    pub leases: Arc<dyn Leases>,
    /// This process, among the holders.
    pub holder: Arc<str>,
    pub clock: Arc<dyn Clock>,
    /// How long a lease lasts unrenewed; renewed every third of it.
    pub ttl: std::time::Duration,
}

impl Holding {
    /// Counts this process in `share`'s group now and every third of a lease's time, until
    /// `stop`: how it learns its fair share.
    pub async fn count_in(&self, share: Arc<Share>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.leases.members(&share.group, &self.holder, self.clock.unix_ms(), self.ttl).await {
                Ok(n) => share.members.store(n.max(1), Ordering::Relaxed),
                Err(e) => tracing::warn!(group = %share.group, error = %e, "cannot count the processes sharing work"),
            }
            tokio::select! {
                _ = self.clock.sleep(self.ttl / 3) => {}
                _ = until_stopped(&mut stop) => return,
            }
        }
    }

    /// Runs `run` with a lease on `work` for as long as it is held: first waits until the
    /// work is free (another process may be doing it), then renews the lease every third of
    /// its time. When the lease is lost, `run` is dropped and the lease sought again; when
    /// `run` returns (asked to stop, or told it was fenced) and `stop` is set, the lease is
    /// given up so a successor need not wait for it to expire. With a `share`, the work is
    /// taken only within this process's share, and handed over (run dropped, lease given up)
    /// when the share shrinks because more processes joined.
    pub async fn hold<F, Fut>(&self, work: Work, share: Option<&Share>, mut stop: watch::Receiver<bool>, mut run: F)
    where
        F: FnMut(Lease) -> Fut,
        Fut: Future<Output = ()>,
    {
        let every = self.ttl / 3;
        let mut failures = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let mut place = None;
            if let Some(share) = share {
                match share.take() {
                    Some(p) => place = Some(p),
                    None => {
                        // This process holds its share already.
                        tokio::select! {
                            _ = self.clock.sleep(every) => {}
                            _ = until_stopped(&mut stop) => return,
                        }
                        continue;
                    }
                }
            }
            let lease = match self.leases.acquire(work.clone(), &self.holder, self.clock.unix_ms(), self.ttl).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    // Held by another process: wait for it to give up or go quiet.
                    tokio::select! {
                        _ = self.clock.sleep(every) => {}
                        _ = until_stopped(&mut stop) => return,
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(work = %work, error = %e, "cannot take a lease; retrying");
                    tokio::select! {
                        _ = self.clock.sleep(super::backoff(failures)) => {}
                        _ = until_stopped(&mut stop) => return,
                    }
                    continue;
                }
            };
            failures = 0;
            tracing::debug!(work = %work, epoch = lease.epoch, "lease taken");
            let mut running = Box::pin(run(lease.clone()));
            let handed_over = loop {
                tokio::select! {
                    _ = &mut running => {
                        if *stop.borrow() {
                            if let Err(e) = self.leases.release(&lease).await {
                                tracing::warn!(work = %work, error = %e, "cannot give up a lease; it expires by itself");
                            }
                            return;
                        }
                        break false;
                    }
                    _ = self.clock.sleep(every) => {
                        if let (Some(share), Some(p)) = (share, place.take()) {
                            place = share.shed(p);
                        }
                        if share.is_some() && place.is_none() {
                            tracing::info!(work = %work, "more processes share this work; handing it over");
                            if let Err(e) = self.leases.release(&lease).await {
                                tracing::warn!(work = %work, error = %e, "cannot give up a lease; it expires by itself");
                            }
                            break true;
                        }
                        match self.leases.renew(&lease, self.clock.unix_ms(), self.ttl).await {
                            Ok(()) => {}
                            Err(StoreError::Fenced(_)) => {
                                tracing::warn!(work = %work, "lease lost to another process; stopping this work");
                                break false;
                            }
                            // Not lost yet: the store will say so if it is.
                            Err(e) => tracing::error!(work = %work, error = %e, "cannot renew a lease"),
                        }
                    }
                }
            };
            // The work stops here, before anything else happens: a successor may be doing it.
            drop(running);
            drop(place);
            if handed_over {
                // Let the process it was handed to take it before looking again.
                tokio::select! {
                    _ = self.clock.sleep(self.ttl) => {}
                    _ = until_stopped(&mut stop) => return,
                }
            }
        }
    }
}
