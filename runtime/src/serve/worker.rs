//! A worker: takes a batch of events from one bus partition, runs each through the VM on
//! its conversation's session, hands the effects on, and stores the sessions.

use super::http::Shared;
use super::transcript::From;
use super::{Event, now};
use crate::session::Session;
use crate::vm::{self, Context, Effect, Input, Limits};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub async fn run(shared: Arc<Shared>, partition: usize) {
    loop {
        let batch = shared.bus.next_batch(partition, 64).await;
        // Hydrate: every session the batch touches, in one store call.
        let mut sessions: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        {
            let store = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
            for e in &batch {
                let key = e.key();
                let bytes = store.get(&key).cloned();
                sessions.insert(key, bytes);
            }
        }
        let mut changed: HashMap<String, Vec<u8>> = HashMap::new();
        for event in &batch {
            let key = event.key();
            let current = changed.get(&key).cloned().or_else(|| sessions.get(&key).cloned().flatten());
            if let Some(bytes) = apply(&shared, event, current) {
                changed.insert(key, bytes);
            }
        }
        // Persist: one store call for the batch.
        let mut store = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        store.extend(changed);
    }
}

/// Applies one event; returns the session's new bytes when it changed.
fn apply(shared: &Arc<Shared>, event: &Event, current: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let key = event.key();
    let bot = shared.bots.iter().find(|b| b.id == event.bot)?;
    let mut session = match current.as_deref().map(Session::decode) {
        Some(Ok(s)) if s.program == bot.program.program().hash => s,
        Some(Ok(_)) | None => bot.program.new_session(),
        Some(Err(e)) => {
            tracing::error!(conversation = %key, error = %e, "stored session is unreadable; starting over");
            bot.program.new_session()
        }
    };
    // A conversation that has ended starts again with the next message.
    if session.state == crate::session::State::Ended && matches!(event.kind, Input::Text(_) | Input::Button(_)) {
        // Timer numbers keep counting, so the old conversation's timers stay stale.
        let started = session.timers_started;
        session = bot.program.new_session();
        session.timers_started = started;
    }
    // The user's own message goes into the transcript before the bot's answer.
    if let Input::Text(t) | Input::Button(t) = &event.kind {
        shared.transcripts.push(&key, format!("{}:user", event.id), From::User, t.clone(), vec![]);
    }
    let ctx = Context {
        event_id: event.id.clone(),
        user_id: event.user_id.clone(),
        user_name: event.user_name.clone(),
        platform: "web".into(),
        bot_id: bot.id.clone(),
        bot_name: bot.name.clone(),
        event_text: match &event.kind {
            Input::Text(t) | Input::Button(t) => t.clone(),
            _ => String::new(),
        },
        ..Context::default()
    };
    let started = std::time::Instant::now();
    let result = vm::step_in_place(&bot.program, &mut session, event.kind.clone(), &ctx, now(), &Limits::default());
    shared.metrics.step_took(started.elapsed());
    shared.metrics.steps.fetch_add(1, Ordering::Relaxed);
    let step = match result {
        Ok(step) => step,
        Err(e) => {
            shared.metrics.step_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(conversation = %key, error = %e, "step failed");
            shared.transcripts.push(
                &key,
                format!("{}:error", event.id),
                From::System,
                format!("Sorry, this bot ran into a problem: {e}"),
                vec![],
            );
            return None;
        }
    };
    if step.ignored.is_some() {
        return None;
    }
    let p = bot.program.program();
    shared.metrics.visited(
        &bot.id,
        step.visited.iter().filter_map(|&n| p.nodes.get(n as usize)).map(|n| p.text(n.name).to_string()),
    );
    for (i, effect) in step.effects.into_iter().enumerate() {
        let id = format!("{}:{i}", event.id);
        match effect {
            Effect::Send { text, image, buttons } => {
                let text = match image {
                    Some(url) => format!("{text}\n{url}"),
                    None => text,
                };
                shared.metrics.replies.fetch_add(1, Ordering::Relaxed);
                shared.transcripts.push(&key, id, From::Bot, text, buttons);
            }
            Effect::StartTimer { timer, at } => shared.timers.schedule(event, timer, at),
            Effect::CancelTimer { timer } => shared.timers.cancel(&key, timer),
            Effect::Http { method, url, headers, body } => {
                super::http::request(shared.clone(), event, method, url, headers, body);
            }
            Effect::Handoff { queue, reason } => {
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                shared.transcripts.push(&key, id, From::System, format!("Handed to the `{queue}` team{why}."), vec![]);
            }
            Effect::End => {
                shared.transcripts.push(&key, id, From::System, "The conversation has ended.".into(), vec![])
            }
        }
    }
    Some(session.encode())
}
