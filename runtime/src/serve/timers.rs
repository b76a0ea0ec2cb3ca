//! Timers for `ask` timeouts and `wait` reminders: due timers become timer events on the
//! bus. A timer the conversation no longer waits for fires anyway and the VM ignores it as
//! stale, so cancelling is an optimisation, not a correctness matter.

use super::{Event, MemoryBus};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: u64,
    key: String,
    timer: u32,
    bot: String,
    conversation: String,
    user_id: String,
    user_name: String,
}

#[derive(Default)]
pub struct Timers {
    due: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: Notify,
}

impl Timers {
    pub fn schedule(&self, origin: &Event, timer: u32, at: u64) {
        let due = Due {
            at,
            key: origin.key(),
            timer,
            bot: origin.bot.clone(),
            conversation: origin.conversation.clone(),
            user_id: origin.user_id.clone(),
            user_name: origin.user_name.clone(),
        };
        self.due.lock().unwrap_or_else(|e| e.into_inner()).push(Reverse(due));
        self.changed.notify_one();
    }

    /// Forgets a timer the conversation no longer waits for.
    pub fn cancel(&self, key: &str, timer: u32) {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).retain(|Reverse(d)| !(d.key == key && d.timer == timer));
    }

    pub fn pending(&self) -> usize {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Publishes timers as they fall due, forever.
    pub async fn run(&self, bus: &MemoryBus) {
        loop {
            let now = super::now();
            let next = {
                let mut heap = self.due.lock().unwrap_or_else(|e| e.into_inner());
                let mut fired = Vec::new();
                while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    fired.extend(heap.pop().map(|Reverse(d)| d));
                }
                for d in fired {
                    let event = Event {
                        id: format!("timer:{}:{}", d.key, d.timer),
                        bot: d.bot.clone(),
                        conversation: d.conversation.clone(),
                        user_id: d.user_id.clone(),
                        user_name: d.user_name.clone(),
                        kind: crate::vm::Input::Timer { timer: d.timer },
                        received_at: now,
                    };
                    if bus.publish(event).is_err() {
                        // The bus is full: try again in a second rather than lose the timer.
                        heap.push(Reverse(Due { at: now + 1, ..d }));
                    }
                }
                heap.peek().map(|Reverse(d)| d.at)
            };
            let sleep = match next {
                Some(at) => std::time::Duration::from_secs(at.saturating_sub(super::now()).max(1)),
                None => std::time::Duration::from_secs(3600),
            };
            let _ = tokio::time::timeout(sleep, self.changed.notified()).await;
        }
    }
}
