//! The in-process event bus: partitioned by conversation key, ordered per key, bounded.
//! A full partition refuses new events (the gateway answers 503 with Retry-After) instead of
//! dropping them or growing without limit.

use super::Event;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

#[derive(Debug, PartialEq, Eq)]
pub struct BusFull;

struct Partition {
    queue: Mutex<VecDeque<Event>>,
    ready: Notify,
}

pub struct MemoryBus {
    parts: Vec<Partition>,
    capacity: usize,
    published: AtomicU64,
}

impl MemoryBus {
    pub fn new(partitions: usize, capacity: usize) -> MemoryBus {
        MemoryBus {
            parts: (0..partitions.max(1))
                .map(|_| Partition { queue: Mutex::new(VecDeque::new()), ready: Notify::new() })
                .collect(),
            capacity,
            published: AtomicU64::new(0),
        }
    }

    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    pub fn partition_of(&self, key: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.parts.len() as u64) as usize
    }

    pub fn publish(&self, event: Event) -> Result<(), BusFull> {
        let p = &self.parts[self.partition_of(&event.key())];
        {
            let mut q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= self.capacity {
                return Err(BusFull);
            }
            q.push_back(event);
        }
        self.published.fetch_add(1, Ordering::Relaxed);
        p.ready.notify_one();
        Ok(())
    }

    /// Up to `max` events of partition `p`, waiting until there is at least one.
    pub async fn next_batch(&self, p: usize, max: usize) -> Vec<Event> {
        let part = &self.parts[p];
        loop {
            {
                let mut q = part.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !q.is_empty() {
                    let n = q.len().min(max);
                    return q.drain(..n).collect();
                }
            }
            part.ready.notified().await;
        }
    }

    /// Events waiting, over all partitions.
    pub fn depth(&self) -> usize {
        self.parts.iter().map(|p| p.queue.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}
