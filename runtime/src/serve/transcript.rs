//! The web-chat channel's outbox: each conversation's messages, both ways, for the page to
//! poll. Reply ids are derived from the event that caused them, so a replayed event cannot
//! show a reply twice.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    User,
    Bot,
    /// Notes from botc itself ("handed to a human", "the conversation has ended").
    System,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the conversation, from 1.
    pub seq: u64,
    /// Deterministic id: the event id and the effect's index.
    pub id: String,
    pub from: From,
    pub text: String,
    pub buttons: Vec<crate::vm::Button>,
}

/// At most this many entries are kept per conversation.
const KEEP: usize = 1000;

#[derive(Default)]
pub struct Transcripts {
    conversations: Mutex<HashMap<String, Vec<Entry>>>,
    changed: Notify,
}

impl Transcripts {
    /// Appends an entry unless one with the same id is already there.
    pub fn push(&self, key: &str, id: String, from: From, text: String, buttons: Vec<crate::vm::Button>) {
        {
            let mut all = self.conversations.lock().unwrap_or_else(|e| e.into_inner());
            let list = all.entry(key.to_string()).or_default();
            if list.iter().rev().take(64).any(|e| e.id == id) {
                return;
            }
            let seq = list.last().map_or(1, |e| e.seq + 1);
            list.push(Entry { seq, id, from, text, buttons });
            if list.len() > KEEP {
                let extra = list.len() - KEEP;
                list.drain(..extra);
            }
        }
        self.changed.notify_waiters();
    }

    pub fn after(&self, key: &str, seq: u64) -> Vec<Entry> {
        let all = self.conversations.lock().unwrap_or_else(|e| e.into_inner());
        all.get(key).map(|l| l.iter().filter(|e| e.seq > seq).cloned().collect()).unwrap_or_default()
    }

    /// Entries after `seq`, waiting up to `wait` for the first one.
    pub async fn wait_after(&self, key: &str, seq: u64, wait: std::time::Duration) -> Vec<Entry> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            let found = self.after(key, seq);
            if !found.is_empty() {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }
}
