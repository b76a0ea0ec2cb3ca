//! The HTTP side of `botc serve`: the web-chat page and its JSON API (the gateway for the
//! web channel: validate, publish, acknowledge), health, and the caller for flows' `http`
//! nodes.

use super::ports::{Bus, SessionStore, StoreError, Transcript};
use super::transcript::{Entry, From};
use super::{Bots, Event, Metrics};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use botc_runtime::clock::Clock;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The gateway role's web side: the page, its JSON API and the platform webhooks. It
/// validates, publishes to the bus and acknowledges; it never runs flow logic.
pub struct Gateway {
    pub bots: Arc<Bots>,
    /// Where accepted events go.
    pub bus: Arc<dyn Bus>,
    /// The web chat's messages, for the page to read.
    pub transcript: Arc<dyn Transcript>,
    /// Sessions, for the flow view's "where do conversations wait".
    pub sessions: Arc<dyn SessionStore>,
    pub metrics: Arc<Metrics>,
    /// Stamps events with their time.
    pub clock: Arc<dyn Clock>,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Who may hand conversations back and see waiting counts.
    pub operators: super::Operators,
    /// Other sites whose pages may use the web chat's API (`[web] allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// What one client may do.
    pub admission: super::admission::Admission,
    /// The key web conversations' tokens derive from: the deployment's, from the flow
    /// registry ([`Gateway::load_key`]). Until it is loaded the web chat answers 503.
    conversation_key: std::sync::OnceLock<[u8; 32]>,
    /// One count of waiting conversations at a time (each reads up to 10,000 sessions).
    counting: tokio::sync::Semaphore,
    /// Flow pictures' unchanging parts, by program hash.
    outlines: std::sync::Mutex<HashMap<[u8; 32], Arc<Outline>>>,
    next_event: AtomicU64,
    /// Makes event ids unique across restarts of the process.
    boot: u64,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bots: Arc<Bots>,
        bus: Arc<dyn Bus>,
        transcript: Arc<dyn Transcript>,
        sessions: Arc<dyn SessionStore>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        body_limit: usize,
        operators: super::Operators,
    ) -> Gateway {
        let boot = clock.unix_ms();
        let admission = super::admission::Admission::new(Default::default(), None, clock.clone());
        Gateway {
            bots,
            bus,
            transcript,
            sessions,
            metrics,
            clock,
            body_limit,
            operators,
            allowed_origins: Vec::new(),
            admission,
            conversation_key: std::sync::OnceLock::new(),
            counting: tokio::sync::Semaphore::new(1),
            outlines: std::sync::Mutex::default(),
            next_event: AtomicU64::new(1),
            boot,
        }
    }

    /// Whether a request that changes state may, as a browser may send it: `Err` is the
    /// refusal. A page on another site can make a visitor's browser send a form post or a
    /// `text/plain` request from the visitor's network (CSRF); botc takes messages only as
    /// JSON (which browsers send to another site only after a CORS preflight), and from
    /// pages of its own origin or of `[web] allowed_origins`. Clients that are not browsers
    /// send no `Origin`.
    fn browser_may(&self, headers: &HeaderMap, json: bool) -> Result<(), Response> {
        if json {
            let given = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !given.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
                self.metrics.reject("not_json");
                return Err(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the message as JSON, with `Content-Type: application/json`",
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.origin_allowed(origin, headers) {
                self.metrics.reject("forbidden_origin");
                return Err(error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "pages from `{origin}` may not use this web chat; list the origin under [web] allowed_origins in botc.toml"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The server's own origin (the one the request's `Host` names, or behind a proxy its
    /// `X-Forwarded-Host`), or a listed one. A page on another site cannot set either
    /// header on a request its browser sends without a preflight.
    fn origin_allowed(&self, origin: &str, headers: &HeaderMap) -> bool {
        let named =
            |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or("").trim());
        let own = origin.split_once("://").map(|(_, authority)| authority);
        let ours = |host: Option<&str>| own.is_some_and(|o| host.is_some_and(|h| h.eq_ignore_ascii_case(o)));
        ours(named("host"))
            || ours(named("x-forwarded-host"))
            || self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Loads the deployment's conversation key from the registry (making it, as the first
    /// process to ask). `Err` says why not.
    pub async fn try_load_key(&self, flows: &dyn super::ports::FlowRegistry) -> Result<(), String> {
        let fresh = random_secret().map_err(|e| format!("the operating system gives no random bytes: {e}"))?;
        let key = flows.secret(CONVERSATION_KEY.into(), fresh).await.map_err(|e| e.to_string())?;
        let _ = self.conversation_key.set(key);
        Ok(())
    }

    /// [`Gateway::try_load_key`] until it succeeds, with backoff.
    pub async fn load_key(self: Arc<Self>, flows: Arc<dyn super::ports::FlowRegistry>) {
        let mut attempt = 0;
        while self.conversation_key.get().is_none() {
            if let Err(e) = self.try_load_key(&*flows).await {
                attempt += 1;
                tracing::error!(error = %e, attempt, "cannot load the web conversation key; the web chat answers 503 until it can");
                tokio::time::sleep(super::backoff(attempt)).await;
            }
        }
    }

    /// Whether this request may use web conversation `conversation` of `bot`: it presents
    /// the conversation's token (or, where `operators_too`, the operator token). Every
    /// refusal reads the same whether or not the conversation exists.
    fn holder(&self, bot: &str, conversation: &str, headers: &HeaderMap, operators_too: bool) -> Result<(), Response> {
        let Some(key) = self.conversation_key.get() else {
            return Err(unavailable("botc cannot check conversation tokens yet; retry in a moment"));
        };
        let refuse = |message: String| {
            self.metrics.reject("unauthorized");
            let mut r = error(StatusCode::UNAUTHORIZED, &message);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(r)
        };
        match bearer(headers) {
            Some(t) if botc_runtime::platforms::verify::conversation_token_valid(key, bot, conversation, t) => Ok(()),
            Some(_)
                if operators_too
                    && matches!(self.operators, super::Operators::Token(_))
                    && self.operator(headers).is_ok() =>
            {
                Ok(())
            }
            Some(_) => refuse(format!("this token is not conversation `{conversation}`'s")),
            None => refuse(format!(
                "a conversation is used with its token: start one with POST /api/bots/{bot}/conversations, \
                 then send `Authorization: Bearer TOKEN` with the token it gave"
            )),
        }
    }

    /// Whether this request may do what operators do: `Err` is the refusal to send.
    fn operator(&self, headers: &HeaderMap) -> Result<(), Response> {
        match &self.operators {
            super::Operators::Open => Ok(()),
            super::Operators::Closed => Err(error(
                StatusCode::FORBIDDEN,
                "operator actions are off: this server listens beyond loopback and has no operator token; \
                 set [admin] token_env in botc.toml (docs/serve.md, Security)",
            )),
            super::Operators::Token(token) => match bearer(headers) {
                Some(t) if botc_runtime::platforms::verify::same_secret(token.expose().as_bytes(), t.as_bytes()) => {
                    Ok(())
                }
                _ => {
                    let mut r = error(
                        StatusCode::UNAUTHORIZED,
                        "operator actions need `Authorization: Bearer TOKEN` with the operator token",
                    );
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    Err(r)
                }
            },
        }
    }

    /// The gateway's routes.
    pub fn router(self: Arc<Self>) -> Router {
        // Pages of the listed origins may call the web chat's API from the browser (the
        // chat widget on a shop's site); the preflight and headers are tower-http's.
        let origins: Vec<HeaderValue> = self.allowed_origins.iter().filter_map(|o| o.parse().ok()).collect();
        let cors = tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(std::time::Duration::from_secs(3600));
        let api = Router::new()
            .route("/api/bots", get(list_bots))
            .route("/api/bots/{bot}/conversations", post(start_conversation))
            .route("/api/bots/{bot}/conversations/{conversation}/messages", post(post_message).get(get_messages))
            .route("/api/bots/{bot}/conversations/{conversation}/handback", post(hand_back))
            .route("/api/bots/{bot}/graph", get(graph))
            .layer(cors);
        Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route("/widget.js", get(widget))
            .route(DAGRE_PATH, get(dagre))
            .merge(api)
            .route("/webhooks/{platform}/{bot}", post(super::webhook::webhook))
            // The handlers enforce the body limit themselves, with a JSON error.
            .layer(DefaultBodyLimit::disable())
            .with_state(self)
    }

    /// A new event id, unique in this process and across its restarts.
    fn event_id(&self, prefix: &str) -> String {
        let n = self.next_event.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}:{}:{n}", self.boot)
    }
}

/// What every process serves besides its roles: `/healthz`, `/readyz` and `/metrics`.
pub struct Ops {
    pub metrics: Arc<Metrics>,
    pub health: Arc<super::supervise::Health>,
    /// Whether events can be stored, and how deep the bus is.
    pub bus: Arc<dyn Bus>,
    pub timers: Arc<dyn super::ports::TimerStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub replies: Arc<dyn super::ports::ReplyQueue>,
    pub bots: Arc<super::Bots>,
}

impl Ops {
    /// `/healthz`, `/readyz`, and `/metrics` when `with_metrics`.
    pub fn router(self: Arc<Self>, with_metrics: bool) -> Router {
        let r = Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(ready));
        let r = if with_metrics { r.route("/metrics", get(metrics)) } else { r };
        r.with_state(self)
    }
}

const PAGE: &str = include_str!("page.html");

/// The chat widget other sites include (docs/widget.md).
const WIDGET: &str = include_str!("widget.js");

/// The flow view's layered layout: dagre (MIT, github.com/dagrejs/dagre), the layout most
/// flowchart tools use, vendored unchanged from its npm release (`tests/browser` checks the
/// copy against the pinned package) so the page needs nothing from elsewhere.
const DAGRE: &str = include_str!("assets/dagre.min.js");
const DAGRE_PATH: &str = "/assets/dagre-3.1.3.min.js";

async fn dagre() -> Response {
    let mut r = DAGRE.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    // The path names the version: it never changes.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    r
}

async fn widget() -> Response {
    let mut r = WIDGET.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

/// The connection's peer address, when served by [`super::transport::serve`].
type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

/// The name of the deployment secret that web conversations' tokens derive from.
pub const CONVERSATION_KEY: &str = "web-conversations";

/// 32 bytes from the operating system's CSPRNG.
pub fn random_secret() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Answers what no route matched.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page; the API is under /api/bots")
}

/// The longest message a user can send, in characters.
const MAX_TEXT: usize = 4096;

/// Publishes one event and answers for it: 202 once it is durable, 503 with Retry-After
/// when it was not accepted (nothing is acknowledged that could be lost).
async fn publish(s: &Gateway, event: Event) -> Response {
    let id = event.id.clone();
    match s.bus.publish(vec![event]).await {
        Ok(()) => {
            s.metrics.accepted.inc();
            (StatusCode::ACCEPTED, axum::Json(json!({ "event": id }))).into_response()
        }
        Err(e) => not_stored(s, &e),
    }
}

/// The answer to a request whose event could not be stored: counted, and 503 so the client
/// (or platform) sends it again.
pub(super) fn not_stored(s: &Gateway, e: &StoreError) -> Response {
    if *e == StoreError::Full {
        s.metrics.reject("bus_full");
        return unavailable("botc is busy; retry in a moment");
    }
    tracing::error!(error = %e, "an event could not be stored; the sender was told to retry");
    s.metrics.reject("store_error");
    unavailable("botc cannot store events right now; retry in a moment")
}

/// One held long-poll in `botc_web_long_polls`, for as long as it lives.
struct Held(prometheus_client::metrics::gauge::Gauge);

impl Held {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// 429 with `Retry-After` (whole seconds, at least 1): `what` was over its budget.
fn too_many(s: &Gateway, what: &str, wait: std::time::Duration) -> Response {
    s.metrics.reject("rate_limited");
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, &format!("{what}; retry in {} s", secs.max(1)));
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
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

/// Ready when events can be stored and every role runs: a load balancer stops sending
/// while either is not so.
async fn ready(State(o): State<Arc<Ops>>) -> Response {
    if let Err(e) = o.bus.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response();
    }
    let down = o.health.down();
    if !down.is_empty() {
        let list = down.join(", ");
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: restarting after a failure: {list}\n"))
            .into_response();
    }
    "ready\n".into_response()
}

async fn metrics(State(o): State<Arc<Ops>>) -> Response {
    use super::metrics::Measured;
    let measured = [
        (Measured::BusDepth, o.bus.depth().await.unwrap_or(0)),
        (Measured::TimersPending, o.timers.pending().await.unwrap_or(0)),
        (Measured::Sessions, o.sessions.count().await.unwrap_or(0)),
        (Measured::RepliesWaiting, o.replies.depth().await.unwrap_or(0)),
    ];
    let bots = o.bots.snapshot();
    let versions: Vec<(String, u64)> =
        bots.iter().filter_map(|b| bots.number(&b.id).map(|n| (b.id.clone(), n))).collect();
    let mut r = o.metrics.render(&measured, &versions).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(super::metrics::CONTENT_TYPE));
    r
}

async fn list_bots(State(s): State<Arc<Gateway>>) -> Response {
    let bots: Vec<Json> =
        s.bots.list().iter().map(|b| json!({ "id": b.id, "name": b.name, "platform": b.platform.name() })).collect();
    axum::Json(json!({ "bots": bots })).into_response()
}

/// Conversation ids (issued by the server) and clients' message ids: a safe alphabet and length.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Counts an inbound request and reads its body up to the limit (413 with a JSON error
/// beyond it).
pub(super) async fn receive(s: &Gateway, body: axum::body::Body) -> Result<Bytes, Response> {
    s.metrics.received.inc();
    axum::body::to_bytes(body, s.body_limit).await.map_err(|_| {
        s.metrics.reject("too_large");
        error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is over the {} byte limit", s.body_limit))
    })
}

/// Starts a web conversation: a new id (128 random bits) and its token. Nothing is stored
/// until the first message; the token is derived from the id under the deployment's key, so
/// every gateway can check it.
async fn start_conversation(
    State(s): State<Arc<Gateway>>,
    Path(bot): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = s.browser_may(&headers, false) {
        return refused;
    }
    if s.bots.get(&bot).is_none() {
        s.metrics.reject("unknown_bot");
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`; GET /api/bots lists them"));
    }
    let client = s.admission.client(&headers, peer.map(|p| p.0.0));
    if let Err(wait) = s.admission.write(client, None) {
        return too_many(&s, "this address starts conversations and sends messages faster than botc takes them", wait);
    }
    let Some(key) = s.conversation_key.get() else {
        return unavailable("botc cannot start conversations yet; retry in a moment");
    };
    let id = match random_secret() {
        Ok(bytes) => super::hex(&bytes[..16]),
        Err(e) => {
            tracing::error!(error = %e, "the operating system gives no random bytes");
            return unavailable("botc cannot start conversations right now; retry in a moment");
        }
    };
    let token = botc_runtime::platforms::verify::conversation_token(key, &bot, &id);
    (StatusCode::CREATED, axum::Json(json!({ "conversation": id, "token": token }))).into_response()
}

async fn post_message(
    State(s): State<Arc<Gateway>>,
    Path((bot, conversation)): Path<(String, String)>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    // Checked before the body is read: a refused request costs no more than its head.
    let allowed = async {
        s.browser_may(&headers, true)?;
        if s.bots.get(&bot).is_none() {
            s.metrics.reject("unknown_bot");
            return Err(error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`; GET /api/bots lists them")));
        }
        if !valid_id(&conversation) {
            s.metrics.reject("bad_request");
            return Err(error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`"));
        }
        s.holder(&bot, &conversation, &headers, false)?;
        // Budgets are charged only to the conversation's holder: nobody else can spend them.
        let client = s.admission.client(&headers, peer.map(|p| p.0.0));
        let key = super::event::key(&bot, "web", &conversation);
        s.admission.write(client, Some(&key)).map_err(|wait| {
            too_many(&s, "messages come faster than botc takes them from this address or conversation", wait)
        })
    };
    if let Err(refused) = allowed.await {
        s.metrics.received.inc();
        return refused;
    }
    let body = match receive(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
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
    // Control characters (NUL, escape sequences, …) are no one's message: refused, not
    // passed on to transcripts, logs and platforms. Tabs and line breaks are text.
    if text.or(button).is_some_and(|t| t.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))) {
        s.metrics.reject("bad_request");
        return error(
            StatusCode::BAD_REQUEST,
            "a message may not contain control characters (tab and line breaks are fine)",
        );
    }
    let input = match (text, button) {
        (Some(t), None) => botc_runtime::vm::Input::Text(t.to_string()),
        (None, Some(b)) => botc_runtime::vm::Input::Button(b.to_string()),
        _ => {
            s.metrics.reject("bad_request");
            return error(StatusCode::BAD_REQUEST, "send {\"text\": \"...\"} or {\"button\": \"value\"}");
        }
    };
    // A name given once is remembered with the conversation's session (the worker fills
    // it in for events without one).
    // Names go into messages, transcripts and logs: one line, no controls, and no direction
    // overrides that would make a name display as something else.
    let printable = |c: &char| !c.is_control() && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let user_name = value
        .get("user")
        .and_then(Json::as_str)
        .map(|u| u.chars().filter(printable).take(100).collect::<String>().trim().to_string())
        .unwrap_or_default();
    // The language: as the page says (`"language": "pt-BR"`), else the browser's first choice.
    let accepted = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let language =
        value.get("language").and_then(Json::as_str).unwrap_or(accepted.split([',', ';']).next().unwrap_or(""));
    let user_language = if language.len() <= 35 && language.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        language.to_string()
    } else {
        String::new()
    };
    // The client's own id for the message (`"id": "m-42"`) makes a retry after a lost
    // answer safe: the same id within a day is taken once.
    let client_id = match value.get("id") {
        None => None,
        Some(Json::String(id)) if valid_id(id) => Some(id.as_str()),
        Some(_) => {
            s.metrics.reject("bad_request");
            return error(
                StatusCode::BAD_REQUEST,
                "`id` is your own id for this message: 1-128 letters, digits, `-`, `_` or `.`",
            );
        }
    };
    let event = Event {
        id: match client_id {
            Some(id) => format!("web:{bot}/{conversation}/{id}"),
            None => s.event_id("web"),
        },
        platform: "web".into(),
        bot: bot.clone(),
        conversation: conversation.clone(),
        user_id: format!("web:{conversation}"),
        user_name,
        user_language,
        kind: input,
        received_at: s.clock.unix(),
        reply_to: String::new(),
    };
    if client_id.is_none() {
        return publish(&s, event).await;
    }
    let id = event.id.clone();
    match s.bus.publish_once(event, CLIENT_ID_TTL).await {
        Ok(taken) => {
            if taken {
                s.metrics.accepted.inc();
            }
            (StatusCode::ACCEPTED, axum::Json(json!({ "event": id, "duplicate": !taken }))).into_response()
        }
        Err(e) => not_stored(&s, &e),
    }
}

/// How long a web client's message id is remembered: a retry within this is taken once.
const CLIENT_ID_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn entry_json(e: &Entry) -> Json {
    let buttons: Vec<Json> =
        e.buttons.iter().map(|b| json!({ "label": b.label, "value": b.value, "url": b.url })).collect();
    let from = match e.from {
        From::User => "user",
        From::Bot => "bot",
        From::System => "system",
    };
    // `at`: unix seconds, or null when unknown (entries from before botc kept the time).
    let at = (e.at > 0).then_some(e.at);
    json!({ "seq": e.seq, "from": from, "text": e.text, "buttons": buttons, "at": at })
}

async fn get_messages(
    State(s): State<Arc<Gateway>>,
    Path((bot, conversation)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    if s.bots.get(&bot).is_none() {
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    }
    if !valid_id(&conversation) {
        return error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`");
    }
    // An operator (a human agent) may read any conversation; others only their own.
    if let Err(refused) = s.holder(&bot, &conversation, &headers, true) {
        return refused;
    }
    // The same rules as a POST: a value that is not a whole number is refused, never read as 0.
    let number = |name: &str, what: &str| match q.get(name) {
        None => Ok(0),
        Some(v) => {
            v.parse::<u64>().map_err(|_| error(StatusCode::BAD_REQUEST, &format!("`{name}` must be {what}, not `{v}`")))
        }
    };
    let after = match number("after", "a whole number (the last `seq` you have; 0 for all)") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let wait = match number("wait", "whole seconds to wait for a new message (0-30)") {
        Ok(n) => n.min(30),
        Err(r) => return r,
    };
    // A long-poll holds a connection: each address holds a few at most.
    let _poll = if wait > 0 {
        match s.admission.poll(s.admission.client(&headers, peer.map(|p| p.0.0))) {
            Some(place) => Some(place),
            None => {
                return too_many(
                    &s,
                    "this address holds as many open long-polls (`wait`) as it may; finish one first",
                    std::time::Duration::from_secs(1),
                );
            }
        }
    } else {
        None
    };
    let _held = (wait > 0).then(|| Held::new(&s.metrics.long_polls));
    let key = super::event::key(&bot, "web", &conversation);
    // A long poll holds a connection: it ends after `wait` seconds of real time whatever
    // the clock says, like any network timeout. Only the waiting is timed: each read runs to
    // its end, so `wait=0` is one complete read, however long the store takes.
    let expired = tokio::time::sleep(std::time::Duration::from_secs(wait));
    tokio::pin!(expired);
    let entries = loop {
        // Listen before looking, so an entry written meanwhile wakes this request.
        let changed = s.transcript.changed(&key);
        match s.transcript.after(&key, after).await {
            Ok(found) if !found.is_empty() => break found,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read a transcript");
                return unavailable("botc cannot read messages right now; retry");
            }
        }
        tokio::select! {
            _ = changed => {}
            _ = &mut expired => break Vec::new(),
        }
    };
    let list: Vec<Json> = entries.iter().map(entry_json).collect();
    axum::Json(json!({ "messages": list })).into_response()
}

async fn hand_back(
    State(s): State<Arc<Gateway>>,
    Path((bot, conversation)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.metrics.received.inc();
    if let Err(refused) = s.browser_may(&headers, false) {
        return refused;
    }
    if let Err(refused) = s.operator(&headers) {
        s.metrics.reject("unauthorized");
        return refused;
    }
    if s.bots.get(&bot).is_none() {
        s.metrics.reject("unknown_bot");
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    }
    if !valid_id(&conversation) {
        s.metrics.reject("bad_request");
        return error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`");
    }
    // Only a conversation that exists can be handed back: anything else would start one.
    match s.sessions.load(&[super::event::key(&bot, "web", &conversation)]).await {
        Ok(found) if !found.is_empty() => {}
        Ok(_) => {
            s.metrics.reject("bad_request");
            return error(StatusCode::NOT_FOUND, &format!("bot `{bot}` has no conversation `{conversation}`"));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read a session for a hand-back");
            return unavailable("botc cannot read conversations right now; retry");
        }
    }
    let user_name = String::new();
    let event = Event {
        id: s.event_id("agent"),
        platform: "web".into(),
        bot,
        conversation: conversation.clone(),
        user_id: format!("web:{conversation}"),
        user_name,
        user_language: String::new(),
        kind: botc_runtime::vm::Input::HandBack,
        received_at: s.clock.unix(),
        reply_to: String::new(),
    };
    publish(&s, event).await
}

/// The unchanging part of a flow's picture: each node's kind and short text, and the edges
/// with their labels (`when`/`else` only out of a branch).
struct Outline {
    nodes: Vec<botc_bytecode::NodeOutline>,
    edges: Vec<Json>,
}

impl Gateway {
    /// The program's outline, made once per version.
    fn outline(&self, p: &botc_bytecode::Program) -> Arc<Outline> {
        let mut cache = self.outlines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = cache.get(&p.hash) {
            return o.clone();
        }
        use botc_bytecode::EdgeKind;
        let nodes = p.outline();
        let mut edges: Vec<Json> = p
            .labelled_edges()
            .into_iter()
            .map(|(a, b, kind)| {
                let branch = nodes.get(a as usize).is_some_and(|n| n.kind == "branch");
                let kind =
                    if !branch && matches!(kind, EdgeKind::When | EdgeKind::Else) { EdgeKind::Next } else { kind };
                json!([a, b, kind.name()])
            })
            .collect();
        edges.dedup();
        let o = Arc::new(Outline { nodes, edges });
        // Versions come and go with deploys; a few dozen are kept.
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(p.hash, o.clone());
        o
    }
}

/// The node a stored session of `bot` waits at, when it runs the version `bot` serves.
fn waiting_at(bot: &super::Bot, stored: &super::ports::Stored) -> Option<u32> {
    botc_runtime::session::Session::decode(&stored.session)
        .ok()
        .filter(|session| session.program == bot.program.program().hash)
        .and_then(|session| bot.program.waiting_at(&session))
}

/// Most sessions the graph view looks at to count where conversations wait.
const GRAPH_SCAN: usize = 10_000;

/// The bot's flow as a node list with its edges, for the page's graph view: where its start
/// is, how many conversations wait at each node, and (with `?conversation=ID`) where that
/// conversation waits.
async fn graph(
    State(s): State<Arc<Gateway>>,
    Path(bot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(b) = s.bots.get(&bot) else {
        return error(StatusCode::NOT_FOUND, &format!("no bot `{bot}`"));
    };
    if let Some(c) = q.get("conversation") {
        if !valid_id(c) {
            return error(StatusCode::BAD_REQUEST, "conversation ids are 1-128 letters, digits, `-`, `_` or `.`");
        }
        // Where a conversation waits is its holder's (or an operator's) to know.
        if let Err(refused) = s.holder(&bot, c, &headers, true) {
            return refused;
        }
    }
    let p = b.program.program();
    // How many conversations wait where is an operator's view (and a scan of the store):
    // others get the graph without counts.
    let counts = match s.operator(&headers) {
        Ok(()) => {
            let Ok(_one) = s.counting.try_acquire() else {
                let mut r =
                    error(StatusCode::TOO_MANY_REQUESTS, "another count of waiting conversations is running; retry");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            };
            // Reading and decoding up to 10,000 sessions is work for a blocking thread, not
            // for the threads that answer messages and /healthz meanwhile.
            let (sessions, bot_now, prefix) = (s.sessions.clone(), b.clone(), format!("{bot}/"));
            let runtime = tokio::runtime::Handle::current();
            let count = tokio::task::spawn_blocking(move || {
                let p = bot_now.program.program();
                let mut waiting = vec![0u64; p.nodes.len()];
                let found = match runtime.block_on(sessions.scan(&prefix, GRAPH_SCAN)) {
                    Ok(list) => list,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read sessions for the graph view");
                        Vec::new()
                    }
                };
                for (_, stored) in &found {
                    if let Some(n) = waiting_at(&bot_now, stored) {
                        waiting[n as usize] += 1;
                    }
                }
                (waiting, found.len())
            });
            match count.await {
                Ok(counted) => Some(counted),
                Err(e) => {
                    tracing::error!(error = %e, "the count of waiting conversations failed");
                    None
                }
            }
        }
        Err(_) => None,
    };
    let outline = s.outline(p);
    let nodes: Vec<Json> = p
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "name": p.text(n.name),
                "flow": p.text(p.flows[n.flow as usize].name),
                "kind": outline.nodes[i].kind,
                "text": outline.nodes[i].text,
                "waiting": counts.as_ref().map(|(w, _)| w[i]),
                "visits": counts.as_ref().map(|_| s.metrics.visits_of(&bot, p.text(n.name))),
            })
        })
        .collect();
    let edges = &outline.edges;
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
        Some(c) => match s.sessions.load(&[super::event::key(&bot, "web", c)]).await {
            Ok(m) => match m.into_values().next() {
                Some(super::ports::Found::Stored(stored)) => waiting_at(&b, &stored),
                _ => None,
            },
            Err(_) => None,
        },
        None => None,
    };
    axum::Json(json!({
        "nodes": nodes,
        "edges": edges,
        "start": start,
        "waiting_at": here,
        "counted": counts.as_ref().map(|(_, n)| *n),
    }))
    .into_response()
}

/// An origin as `[web] allowed_origins` takes it: `https://host[:port]` (or `http://`), with
/// nothing after it. A wildcard is refused: it would let every site's pages in.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let example = "write it as the page's scheme and host, like https://shop.example.com";
    if origin.contains('*') {
        return Err(format!("`{origin}`: a wildcard would let every site's pages use the chat; list each origin"));
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(format!("`{origin}` is not an origin; {example}"));
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!("`{origin}`: an origin starts with https:// or http://; {example}"));
    }
    if authority.is_empty() || authority.contains(['/', '?', '#', '*', ' ', '@']) {
        return Err(format!("`{origin}`: an origin is a scheme and a host (and port), no path or wildcard; {example}"));
    }
    Ok(())
}
