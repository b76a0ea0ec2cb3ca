//! A worker: Fetch a batch from one bus partition → Hydrate its sessions in one store call →
//! step each event in order → commit sessions, replies, timer changes, outbox items and the
//! partition's new position as one [`Batch`].
//!
//! Each stored session remembers the position after the last event applied to it, so an
//! event delivered again (after a crash between fetch and commit, or a rewind) is skipped:
//! replaying any suffix of the bus changes nothing.

use super::ports::{
    Batch, Bus, Committer, Delivery, Direction, Expected, FlowRegistry, Found, HistoryRecord, HttpRequest, Lease,
    Message, OutboxItem, Quarantined, QueuedReply, SessionStore, SessionWrite, StoreError, Stored, TimerChange,
};
use super::transcript::{Entry, From};
use super::{Bot, Bots, Catalog, Event, Metrics};
use botc_runtime::clock::Clock;
use botc_runtime::session::Session;
use botc_runtime::vm::{self, Context, Effect, Input, Limits};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Events per batch.
const BATCH: usize = 64;

/// What stepping events needs besides the events and sessions: the bots, where to count,
/// and a clock to time steps with (never to tell the VM the time: that is the event's).
pub struct Core {
    pub bots: Arc<Bots>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

/// The worker role: the core, and the three ports it uses.
pub struct Worker {
    pub core: Core,
    pub bus: Arc<dyn Bus>,
    pub sessions: Arc<dyn SessionStore>,
    pub committer: Arc<dyn Committer>,
    /// Where flow versions a session is pinned to and this process has not loaded are found.
    pub flows: Arc<dyn FlowRegistry>,
    /// The registry environment this process follows, if any.
    pub environment: Option<String>,
}

impl Worker {
    /// Serves the leased bus partition until `stop` turns true or the lease is lost. A batch
    /// in flight is finished first unless the store keeps failing; then the worker stops
    /// without it (its events are on the bus and are done again by the next holder).
    pub async fn run(self: Arc<Self>, lease: Lease, mut stop: watch::Receiver<bool>) {
        let partition = lease.partition().unwrap_or(usize::MAX);
        let mut pos = None;
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let from = match pos {
                Some(p) => Ok(p),
                None => self.bus.committed(&lease).await,
            };
            let prepared = match from {
                Ok(from) => {
                    pos = Some(from);
                    tokio::select! {
                        p = self.prepare(&lease, from) => p,
                        _ = stop.changed() => return,
                    }
                }
                Err(e) => Err(e),
            };
            let (next, batch) = match prepared {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(StoreError::Fenced(_)) => return fenced(partition),
                Err(e) => {
                    failures += 1;
                    if self.pause(partition, &e, failures, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            // The batch is committed before anything else happens; a shutdown waits for it
            // while the store answers.
            loop {
                match self.committer.commit(batch.clone()).await {
                    Ok(()) => {
                        pos = Some(next);
                        failures = 0;
                        break;
                    }
                    Err(StoreError::Conflict(keys)) => {
                        // Someone else moved these conversations on: do the batch again
                        // from the partition's committed position with fresh sessions.
                        tracing::warn!(partition, conversations = ?keys, "sessions changed under the worker; refetching");
                        pos = None;
                        break;
                    }
                    Err(StoreError::Fenced(_)) => return fenced(partition),
                    Err(e) => {
                        failures += 1;
                        if self.pause(partition, &e, failures, &mut stop).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Fetches the next events of `partition` from `from` (waiting for one), loads their
    /// sessions in one call and steps them: the batch to commit and the position after it.
    async fn prepare(&self, lease: &Lease, from: u64) -> Result<Option<(u64, Arc<Batch>)>, StoreError> {
        let deliveries = self.bus.fetch(lease, from, BATCH).await?;
        let Some(next) = deliveries.last().map(|d| d.offset + 1) else { return Ok(None) };
        let stored = self.sessions.load(&keys(&deliveries)).await?;
        self.learn_versions(&deliveries, &stored).await?;
        Ok(Some((next, Arc::new(self.core.process(lease.clone(), next, deliveries, stored)))))
    }

    /// Loads the flow versions these sessions are pinned to that this process does not know
    /// (deployed since it last looked, or first served by another process), so each is
    /// stepped or moved as the registry says rather than started over.
    async fn learn_versions(&self, deliveries: &[Delivery], stored: &HashMap<String, Found>) -> Result<(), StoreError> {
        let mut bots = self.core.bots.snapshot();
        // An event for a bot deployed since this process last looked (a gateway that has
        // looked accepted it): look now rather than skip it.
        if let Some(env) = &self.environment
            && deliveries.iter().any(|d| bots.get(&d.event.bot).is_none() && !d.event.bot.is_empty())
        {
            self.core.bots.follow(&*self.flows, env).await?;
            bots = self.core.bots.snapshot();
        }
        let mut unknown: Vec<(&str, [u8; 32])> = Vec::new();
        for d in deliveries {
            let Some(Found::Stored(s)) = stored.get(&d.event.key()) else { continue };
            let Some(hash) = Session::program_of(&s.session) else { continue };
            if bots.get(&d.event.bot).is_some()
                && !bots.knows(&d.event.bot, &hash)
                && !unknown.contains(&(&d.event.bot, hash))
            {
                unknown.push((&d.event.bot, hash));
            }
        }
        for (bot, hash) in unknown {
            self.core.bots.learn(&*self.flows, self.environment.as_deref(), bot, hash).await?;
        }
        Ok(())
    }

    /// Waits before trying the store again; true when asked to stop meanwhile.
    async fn pause(&self, partition: usize, e: &StoreError, failures: u32, stop: &mut watch::Receiver<bool>) -> bool {
        let wait = super::backoff(failures);
        tracing::error!(partition, error = %e, retry_in_ms = wait.as_millis() as u64, "worker cannot reach the store; retrying");
        let stopping = tokio::select! {
            _ = self.core.clock.sleep(wait) => false,
            _ = super::supervise::until_stopped(stop) => true,
        };
        stopping || *stop.borrow()
    }
}

fn fenced(partition: usize) {
    tracing::warn!(partition, "another worker took this partition over; this one stops serving it");
}

/// The conversations a batch touches, each once.
fn keys(deliveries: &[Delivery]) -> Vec<String> {
    let mut keys: Vec<String> = deliveries.iter().map(|d| d.event.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A conversation's session while a batch runs.
struct Live {
    session: Session,
    expected: Expected,
    /// Events of partition `partition` before this offset have been applied.
    applied: u64,
    partition: u32,
    name: String,
    touched_at: u64,
    touched: bool,
}

/// What to call a user who never said their name.
fn default_name(platform: &str) -> String {
    if platform == "web" { "Web visitor".into() } else { String::new() }
}

impl Core {
    /// The pure part of a worker: a partition's events and their conversations' stored
    /// sessions in, everything they cause out, as one batch. The VM's clock is each event's
    /// `received_at`, so doing a batch again gives the same batch.
    pub fn process(
        &self,
        lease: Lease,
        next: u64,
        deliveries: Vec<Delivery>,
        mut stored: HashMap<String, Found>,
    ) -> Batch {
        let partition = lease.partition().unwrap_or(usize::MAX) as u32;
        // One version of every bot for the whole batch, whatever a reload does meanwhile.
        let bots = self.bots.snapshot();
        let mut live: HashMap<String, Live> = HashMap::new();
        let mut batch = Batch::new(lease, next);
        for Delivery { offset, mut event } in deliveries {
            let Some(bot) = bots.get(&event.bot) else {
                tracing::warn!(bot = %event.bot, "an event for a bot that is not running is skipped");
                continue;
            };
            let key = event.key();
            let conv = live
                .entry(key.clone())
                .or_insert_with(|| self.hydrate(&bots, bot, &key, stored.remove(&key), event.received_at, &mut batch));
            // A position on another partition (the bus was repartitioned) says nothing about
            // this one's events: none is skipped.
            if conv.partition == partition && offset < conv.applied {
                self.metrics.replays_skipped.inc();
                continue;
            }
            // The name given last stands for events that carry none.
            if event.user_name.is_empty() {
                event.user_name = if conv.name.is_empty() { default_name(&event.platform) } else { conv.name.clone() };
            } else {
                conv.name.clone_from(&event.user_name);
            }
            self.apply(bot, &event, &mut conv.session, &mut batch);
            conv.applied = offset + 1;
            conv.partition = partition;
            conv.touched = true;
            conv.touched_at = conv.touched_at.max(event.received_at);
        }
        for (key, conv) in live {
            if conv.touched {
                let stored = Stored {
                    session: conv.session.encode(),
                    version: conv.session.version,
                    applied: conv.applied,
                    partition: conv.partition,
                    name: conv.name,
                    // To the minute: idleness is counted in days, and a conversation's
                    // index entry then moves at most once a minute.
                    touched_at: conv.touched_at / 60 * 60,
                };
                batch.sessions.push(SessionWrite { key, expected: conv.expected, stored });
            }
        }
        batch
    }

    fn hydrate(&self, bots: &Catalog, bot: &Bot, key: &str, found: Option<Found>, now: u64, batch: &mut Batch) -> Live {
        let fresh = |expected, applied, name, touched_at| Live {
            session: bot.program.new_session(),
            expected,
            applied,
            partition: u32::MAX,
            name,
            touched_at,
            touched: false,
        };
        let s = match found {
            None => return fresh(Expected::Absent, 0, String::new(), now),
            Some(Found::Unreadable { raw, error }) => {
                // Kept aside, never guessed at: the conversation starts over, and the bytes
                // wait in quarantine for an operator.
                self.quarantine(key, raw, error, now, batch);
                return fresh(Expected::Unreadable, 0, String::new(), now);
            }
            Some(Found::Stored(s)) => s,
        };
        let session = match Session::decode(&s.session) {
            Ok(session) if session.program == bot.program.program().hash => session,
            // The flow changed since this conversation last moved: carry it over to the new
            // version when its position and variables still fit (as `botc diff` predicts).
            Ok(old) => match bots.previous(&bot.id, &old.program) {
                Some(prev) => {
                    match botc_runtime::migrate::migrate(prev.program(), &bot.program, &old, &Default::default()) {
                        Ok(moved) => {
                            tracing::info!(conversation = %key, "moved to the new version of the flow");
                            moved
                        }
                        Err(why) => {
                            tracing::info!(conversation = %key, reason = %why, "the flow changed under this conversation; it starts over");
                            restart(bot, Some(&old))
                        }
                    }
                }
                None => {
                    tracing::info!(conversation = %key, "the conversation's flow version is unknown; it starts over");
                    restart(bot, Some(&old))
                }
            },
            Err(e) => {
                self.quarantine(key, s.session.clone(), e.to_string(), now, batch);
                restart(bot, None)
            }
        };
        // The version keeps growing across restarts so compare-and-set stays meaningful.
        let mut session = session;
        session.version = session.version.max(s.version);
        Live {
            session,
            expected: Expected::Version(s.version),
            applied: s.applied,
            partition: s.partition,
            name: s.name,
            touched_at: s.touched_at,
            touched: false,
        }
    }

    fn quarantine(&self, key: &str, raw: Vec<u8>, error: String, at: u64, batch: &mut Batch) {
        tracing::error!(conversation = %key, error = %error, "a stored session is unreadable; it is quarantined and the conversation starts over");
        self.metrics.quarantined.inc();
        batch.quarantined.push(Quarantined { key: key.to_string(), raw, error, at });
    }
}

fn restart(bot: &Bot, old: Option<&Session>) -> Session {
    match old {
        Some(old) => bot.program.restart(old),
        None => bot.program.new_session(),
    }
}

impl Core {
    /// Applies one event to its session, adding what it caused to the batch.
    fn apply(&self, bot: &Bot, event: &Event, session: &mut Session, batch: &mut Batch) {
        let key = event.key();
        // A conversation that has ended starts again with the next message.
        bot.program.reopen(session, &event.kind);
        let record =
            |id: &str, direction: Direction, kind: &str, text: &str, buttons: &[vm::Button], at: u64| HistoryRecord {
                id: id.to_string(),
                bot: event.bot.clone(),
                conversation: event.conversation.clone(),
                user_id: event.user_id.clone(),
                platform: event.platform.clone(),
                direction,
                kind: kind.to_string(),
                text: text.to_string(),
                buttons: buttons.to_vec(),
                at,
            };
        // Everything said goes to the transcript and to the history; `agents` is what the
        // history (the agents' view) says instead, when the user is to see less.
        let tell = |batch: &mut Batch,
                    id: String,
                    from: From,
                    text: String,
                    buttons: Vec<vm::Button>,
                    agents: Option<String>| {
            let (direction, kind, at) = match from {
                From::User => (
                    Direction::In,
                    if matches!(event.kind, Input::Button(_)) { "button" } else { "text" },
                    event.received_at,
                ),
                From::Bot => (Direction::Out, "message", event.received_at),
                From::System => (Direction::Out, "note", event.received_at),
            };
            batch.history.push(record(&id, direction, kind, agents.as_deref().unwrap_or(&text), &buttons, at));
            // The transcript is the web chat's; platform conversations live on their platform.
            if event.platform == "web" {
                batch.messages.push(Message { key: key.clone(), entry: Entry { seq: 0, id, from, text, buttons, at } });
            }
        };
        let say = |batch: &mut Batch, id: String, from: From, text: String, buttons: Vec<vm::Button>| {
            tell(batch, id, from, text, buttons, None)
        };
        // Events nobody typed are history too.
        let unsaid = match &event.kind {
            Input::Timer { timer } => Some(("timer", format!("timer {timer} fired"))),
            Input::Http { status, .. } => Some(("http", format!("http response {status}"))),
            Input::HandBack => Some(("handback", "an agent handed the conversation back".to_string())),
            Input::Text(_) | Input::Button(_) => None,
        };
        if let Some((kind, text)) = unsaid {
            batch.history.push(record(&event.id, Direction::In, kind, &text, &[], event.received_at));
        }
        // The user's own message goes into the transcript before the bot's answer.
        if let Input::Text(t) | Input::Button(t) = &event.kind {
            say(batch, format!("{}:user", event.id), From::User, t.clone(), vec![]);
        }
        let ctx = Context {
            event_id: event.id.clone(),
            user_id: event.user_id.clone(),
            user_name: event.user_name.clone(),
            user_language: event.user_language.clone(),
            platform: event.platform.clone(),
            bot_id: bot.id.clone(),
            bot_name: bot.name.clone(),
            event_text: match &event.kind {
                Input::Text(t) | Input::Button(t) => t.clone(),
                _ => String::new(),
            },
        };
        let started = self.clock.monotonic();
        let result =
            vm::step_in_place(&bot.program, session, event.kind.clone(), &ctx, event.received_at, &Limits::default());
        self.metrics.step_took(self.clock.monotonic().saturating_sub(started));
        self.metrics.steps.inc();
        let step = match result {
            Ok(step) => step,
            Err(e) => {
                self.metrics.step_errors.inc();
                tracing::error!(conversation = %key, error = %e, "step failed");
                let text = format!("Sorry, this bot ran into a problem: {e}");
                say(batch, format!("{}:error", event.id), From::System, text, vec![]);
                return;
            }
        };
        if step.ignored.is_some() {
            return;
        }
        let p = bot.program.program();
        self.metrics.visited(
            &bot.id,
            step.visited.iter().filter_map(|&n| p.nodes.get(n as usize)).map(|n| p.text(n.name).to_string()),
        );
        let mut first = true;
        for (i, effect) in step.effects.into_iter().enumerate() {
            let id = format!("{}:{i}", event.id);
            match effect {
                Effect::Send { text, image, buttons } => {
                    let text = match image {
                        Some(url) => format!("{text}\n{url}"),
                        None => text,
                    };
                    self.metrics.replies.inc();
                    // Replies go back the way the conversation came: a platform bot can also be
                    // tried out in the web chat, and then answers there.
                    if bot.platform != super::Platform::Web && event.platform == bot.platform.name() {
                        let reply = botc_runtime::platforms::Reply {
                            reply_to: event.reply_to.clone(),
                            text: text.clone(),
                            buttons: buttons.clone(),
                            first,
                        };
                        batch.replies.push(QueuedReply {
                            id: id.clone(),
                            bot: bot.id.clone(),
                            key: key.clone(),
                            reply,
                        });
                        first = false;
                    }
                    say(batch, id, From::Bot, text, buttons);
                }
                Effect::StartTimer { timer, at } => {
                    let event = Event {
                        id: format!("timer:{key}:{timer}"),
                        kind: Input::Timer { timer },
                        received_at: at,
                        ..event.clone()
                    };
                    batch.timers.push(TimerChange::Start { at, event: Box::new(event) });
                }
                Effect::CancelTimer { timer } => batch.timers.push(TimerChange::Cancel { key: key.clone(), timer }),
                Effect::Http { method, url, headers, body } => {
                    let result = Event { id: format!("{}:http", event.id), ..event.clone() };
                    let request = HttpRequest { method: method.name().to_string(), url, headers, body };
                    batch.outbox.push(OutboxItem { id, request, result });
                }
                // The reason is the flow's note for the agents (it may hold an order, a phone
                // number, an error): the history keeps it, the user is only told who is coming.
                Effect::Handoff { queue, reason } => {
                    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                    let user = format!("A person from our {queue} team will take it from here.");
                    tell(batch, id, From::System, user, vec![], Some(format!("Handed to the `{queue}` team{why}.")));
                }
                Effect::End => say(batch, id, From::System, "The conversation has ended.".into(), vec![]),
            }
        }
    }
}
