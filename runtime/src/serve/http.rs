//! The HTTP side of `botc serve`: the web-chat page and its JSON API (the gateway for the
//! web channel: validate, publish, acknowledge), health, and the caller for flows' `http`
//! nodes.

use super::ports::StoreError;
use super::transcript::{Entry, From};
use super::{Bot, Event, Options, Ports, now};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything the roles share.
pub struct Shared {
    pub bots: Vec<Bot>,
    pub ports: Ports,
    pub metrics: super::Metrics,
    pub api: super::ApiBases,
    /// Earlier versions of each bot's flow (by bot id, then program hash), to move waiting
    /// conversations onto the current one.
    pub previous: HashMap<String, HashMap<[u8; 32], crate::vm::Loaded>>,
    next_event: AtomicU64,
    /// Makes event ids unique across restarts of the process.
    boot: u128,
    pub(super) body_limit: usize,
    pub(super) forget_idle: Option<std::time::Duration>,
}

const PAGE: &str = include_str!("page.html");

/// Serves until `shutdown` completes, then stops accepting requests, lets every worker
/// finish the batch it is on, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bots: Vec<Bot>,
    options: Options,
    ports: Ports,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let boot = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    // Record this run's flow versions and load the earlier ones.
    let mut previous = HashMap::new();
    for b in &bots {
        let p = b.program.program();
        if let Err(e) = ports.flows.register(b.id.clone(), p.hash, p.encode()).await {
            tracing::error!(bot = %b.id, error = %e, "cannot record the flow version");
        }
        let mut versions = HashMap::new();
        match ports.flows.versions(b.id.clone()).await {
            Ok(list) => {
                for bytes in list {
                    match crate::vm::Loaded::from_bytes(&bytes) {
                        Ok(old) if old.program().hash != p.hash => {
                            versions.insert(old.program().hash, old);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(bot = %b.id, error = %e, "an earlier flow version does not load"),
                    }
                }
            }
            Err(e) => tracing::error!(bot = %b.id, error = %e, "cannot read earlier flow versions"),
        }
        previous.insert(b.id.clone(), versions);
    }
    let shared = Arc::new(Shared {
        bots,
        ports,
        metrics: super::Metrics::default(),
        api: options.api.clone(),
        previous,
        next_event: AtomicU64::new(1),
        boot,
        body_limit: options.body_limit,
        forget_idle: options.forget_idle,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..shared.ports.bus.partitions())
        .map(|p| tokio::spawn(super::worker::run(shared.clone(), p, stopped.clone())))
        .collect();
    let mut helpers = vec![
        tokio::spawn(super::roles::timers(shared.clone())),
        tokio::spawn(super::roles::outbox(shared.clone())),
        tokio::spawn(super::roles::history(shared.clone())),
    ];
    for (i, b) in shared.bots.iter().enumerate() {
        if b.platform != super::Platform::Web {
            helpers.push(tokio::spawn(super::dispatch::run(shared.clone(), i)));
        }
    }
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/bots", get(list_bots))
        .route("/api/bots/{bot}/conversations/{conversation}/messages", post(post_message).get(get_messages))
        .route("/api/bots/{bot}/conversations/{conversation}/handback", post(hand_back))
        .route("/api/bots/{bot}/graph", get(graph))
        .route("/webhooks/{platform}/{bot}", post(super::webhook::webhook))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page; the API is under /api/bots") })
        // The message handler enforces the limit itself, with a JSON error.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared.clone());
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    // Everything acknowledged is on disk already; finishing the current batches saves only
    // the work of doing them again at the next start.
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    super::roles::flush_history(&shared, std::time::Duration::from_secs(5)).await;
    for h in helpers {
        h.abort();
        let _ = h.await;
    }
    result
}

/// The longest message a user can send, in characters.
const MAX_TEXT: usize = 4096;

/// Publishes one event and answers for it: 202 once it is durable, 503 with Retry-After
/// when it was not accepted (nothing is acknowledged that could be lost).
async fn publish(s: &Shared, event: Event) -> Response {
    let id = event.id.clone();
    match s.ports.bus.publish(vec![event]).await {
        Ok(()) => {
            s.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            (StatusCode::ACCEPTED, axum::Json(json!({ "event": id }))).into_response()
        }
        Err(e) => not_stored(s, &e),
    }
}

/// The answer to a request whose event could not be stored: counted, and 503 so the client
/// (or platform) sends it again.
pub(super) fn not_stored(s: &Shared, e: &StoreError) -> Response {
    if *e == StoreError::Full {
        s.metrics.reject("bus_full");
        return unavailable("botc is busy; retry in a moment");
    }
    tracing::error!(error = %e, "an event could not be stored; the sender was told to retry");
    s.metrics.reject("store_error");
    unavailable("botc cannot store events right now; retry in a moment")
}

/// 503 with `Retry-After: 1`.
fn unavailable(message: &str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Ready when events can be stored: a load balancer stops sending while they cannot.
async fn ready(State(s): State<Arc<Shared>>) -> Response {
    match s.ports.bus.ready() {
        Ok(()) => "ready\n".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let p = &s.ports;
    let gauges = [
        ("botc_bus_depth", "Events waiting on the bus.", p.bus.depth()),
        ("botc_timers_pending", "Timers scheduled and not yet due.", p.timers.pending().unwrap_or(0)),
        ("botc_sessions", "Conversations with a stored session.", p.sessions.count().unwrap_or(0)),
        ("botc_replies_waiting", "Platform replies waiting for delivery.", p.replies.depth().unwrap_or(0)),
    ];
    let mut r = s.metrics.render(&gauges).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

async fn list_bots(State(s): State<Arc<Shared>>) -> Response {
    let bots: Vec<Json> =
        s.bots.iter().map(|b| json!({ "id": b.id, "name": b.name, "platform": b.platform.name() })).collect();
    axum::Json(json!({ "bots": bots })).into_response()
}

/// Conversation ids are chosen by the client; keep them to a safe alphabet and length.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Counts an inbound request and reads its body up to the limit (413 with a JSON error
/// beyond it).
pub(super) async fn receive(s: &Shared, body: axum::body::Body) -> Result<Bytes, Response> {
    s.metrics.received.fetch_add(1, Ordering::Relaxed);
    axum::body::to_bytes(body, s.body_limit).await.map_err(|_| {
        s.metrics.reject("too_large");
        error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is over the {} byte limit", s.body_limit))
    })
}

async fn post_message(
    State(s): State<Arc<Shared>>,
    Path((bot, conversation)): Path<(String, String)>,
    body: axum::body::Body,
) -> Response {
    let body = match receive(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !s.bots.iter().any(|b| b.id == bot) {
        s.metrics.reject("unknown_bot");
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`; GET /api/bots lists them"));
    }
    if !valid_id(&conversation) {
        s.metrics.reject("bad_request");
        return error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`");
    }
    let value: Json = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            s.metrics.reject("bad_request");
            return error(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}"));
        }
    };
    let text = value.get("text").and_then(Json::as_str);
    let button = value.get("button").and_then(Json::as_str);
    if text.or(button).is_some_and(|t| t.chars().count() > MAX_TEXT) {
        s.metrics.reject("too_large");
        return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("a message is at most {MAX_TEXT} characters"));
    }
    let input = match (text, button) {
        (Some(t), None) => crate::vm::Input::Text(t.to_string()),
        (None, Some(b)) => crate::vm::Input::Button(b.to_string()),
        _ => {
            s.metrics.reject("bad_request");
            return error(StatusCode::BAD_REQUEST, "send {\"text\": \"...\"} or {\"button\": \"value\"}");
        }
    };
    // A name given once is remembered with the conversation's session (the worker fills
    // it in for events without one).
    let user_name = value.get("user").and_then(Json::as_str).map(|u| u.chars().take(100).collect()).unwrap_or_default();
    let n = s.next_event.fetch_add(1, Ordering::Relaxed);
    let event = Event {
        id: format!("web:{}:{n}", s.boot),
        platform: "web".into(),
        bot: bot.clone(),
        conversation: conversation.clone(),
        user_id: format!("web:{conversation}"),
        user_name,
        kind: input,
        received_at: now(),
        reply_to: String::new(),
    };
    publish(&s, event).await
}

fn entry_json(e: &Entry) -> Json {
    let buttons: Vec<Json> =
        e.buttons.iter().map(|b| json!({ "label": b.label, "value": b.value, "url": b.url })).collect();
    let from = match e.from {
        From::User => "user",
        From::Bot => "bot",
        From::System => "system",
    };
    json!({ "seq": e.seq, "from": from, "text": e.text, "buttons": buttons })
}

async fn get_messages(
    State(s): State<Arc<Shared>>,
    Path((bot, conversation)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !s.bots.iter().any(|b| b.id == bot) {
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    }
    let after = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let wait = q.get("wait").and_then(|w| w.parse::<u64>().ok()).unwrap_or(0).min(30);
    let key = super::event::key(&bot, "web", &conversation);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let entries = loop {
        // Listen before looking, so an entry written meanwhile wakes this request.
        let changed = s.ports.transcript.changed();
        match s.ports.transcript.after(&key, after) {
            Ok(found) if !found.is_empty() => break found,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read a transcript");
                return unavailable("botc cannot read messages right now; retry");
            }
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            break Vec::new();
        }
    };
    let list: Vec<Json> = entries.iter().map(entry_json).collect();
    axum::Json(json!({ "messages": list })).into_response()
}

async fn hand_back(State(s): State<Arc<Shared>>, Path((bot, conversation)): Path<(String, String)>) -> Response {
    s.metrics.received.fetch_add(1, Ordering::Relaxed);
    if !s.bots.iter().any(|b| b.id == bot) {
        s.metrics.reject("unknown_bot");
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    }
    if !valid_id(&conversation) {
        s.metrics.reject("bad_request");
        return error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`");
    }
    let user_name = String::new();
    let n = s.next_event.fetch_add(1, Ordering::Relaxed);
    let event = Event {
        id: format!("agent:{}:{n}", s.boot),
        platform: "web".into(),
        bot,
        conversation: conversation.clone(),
        user_id: format!("web:{conversation}"),
        user_name,
        kind: crate::vm::Input::HandBack,
        received_at: now(),
        reply_to: String::new(),
    };
    publish(&s, event).await
}

/// Most sessions the graph view looks at to count where conversations wait.
const GRAPH_SCAN: usize = 10_000;

/// The bot's flow as a node list with its edges, for the page's graph view: where its start
/// is, how many conversations wait at each node, and (with `?conversation=ID`) where that
/// conversation waits.
async fn graph(
    State(s): State<Arc<Shared>>,
    Path(bot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(b) = s.bots.iter().find(|b| b.id == bot) else {
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    };
    let p = b.program.program();
    let waiting_at = |stored: &super::ports::Stored| {
        crate::session::Session::decode(&stored.session)
            .ok()
            .filter(|session| session.program == p.hash)
            .and_then(|session| b.program.waiting_at(&session))
    };
    let mut waiting = vec![0u64; p.nodes.len()];
    let sessions = match s.ports.sessions.scan(&format!("{bot}/"), GRAPH_SCAN) {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "cannot read sessions for the graph view");
            Vec::new()
        }
    };
    for (_, stored) in &sessions {
        if let Some(n) = waiting_at(stored) {
            waiting[n as usize] += 1;
        }
    }
    let nodes: Vec<Json> = p
        .nodes
        .iter()
        .zip(&waiting)
        .map(|(n, w)| json!({ "name": p.text(n.name), "flow": p.text(p.flows[n.flow as usize].name), "waiting": w }))
        .collect();
    let edges: Vec<Json> = p.edges().iter().map(|(a, b)| json!([a, b])).collect();
    // The main flow's start: its first node at or after its entry.
    let entry = p.flows.first().map_or(0, |f| f.entry);
    let start = p
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.flow == 0 && n.offset >= entry)
        .min_by_key(|(_, n)| n.offset)
        .map(|(i, _)| i);
    let here = match q.get("conversation") {
        Some(c) => s
            .ports
            .sessions
            .load(&[super::event::key(&bot, "web", c)])
            .ok()
            .and_then(|m| m.into_values().next())
            .and_then(|stored| waiting_at(&stored)),
        None => None,
    };
    axum::Json(json!({
        "nodes": nodes,
        "edges": edges,
        "start": start,
        "waiting_at": here,
        "counted": sessions.len(),
    }))
    .into_response()
}
