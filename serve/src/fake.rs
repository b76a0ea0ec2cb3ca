//! A stand-in for the Discord, Slack and Telegram APIs on loopback, for tests and for trying
//! a bot without a real platform account. It answers the calls botc makes the way the
//! platforms document them (including their 401s), records every call, and can be told to
//! answer the next calls with a 429 (each platform's own retry-after shape) or a 5xx.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use botc_runtime::clock::{Clock, SystemClock};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One call the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub method: String,
    /// The path, with Telegram's bot token replaced by `TOKEN`.
    pub path: String,
    pub body: Json,
    /// When it arrived: the fake's clock's monotonic time.
    pub at: Duration,
}

/// How to answer a coming call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trouble {
    /// 429 asking to wait this long.
    TooMany(Duration),
    /// 500.
    ServerError,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Calls answered successfully since the start (also those taken by [`FakePlatform::take`]).
    answered: usize,
    /// Answers for the next calls, in order, before normal service resumes.
    trouble: VecDeque<Trouble>,
    tokens: Tokens,
    /// Calls answered with an error (trouble or a bad token), for tests to count.
    refused: Vec<Received>,
}

/// The credentials the fake accepts (an empty one accepts any).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub telegram: String,
    pub slack: String,
    pub discord: String,
}

pub struct FakePlatform {
    pub base: String,
    /// The clock calls are stamped with.
    pub clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Inner>>,
    /// Wakes `wait_for` and `wait_for_refusals` when a call is answered.
    answered: Arc<tokio::sync::Notify>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

type Shared = (Arc<Mutex<Inner>>, Arc<dyn Clock>, Arc<tokio::sync::Notify>);

impl FakePlatform {
    /// Serves on a free loopback port. Point `ApiBases` at `base` (the same base serves all
    /// three platforms: their paths do not overlap).
    pub async fn start(tokens: Tokens) -> std::io::Result<FakePlatform> {
        FakePlatform::start_on(tokens, Arc::new(SystemClock::default())).await
    }

    /// Serves on a free loopback port, stamping calls with `clock`'s monotonic time (give
    /// it the sender's clock, and a test sees exactly how the sender spaced its calls).
    pub async fn start_on(tokens: Tokens, clock: Arc<dyn Clock>) -> std::io::Result<FakePlatform> {
        FakePlatform::serve(([127, 0, 0, 1], 0).into(), tokens, clock).await
    }

    /// Serves at `addr`.
    pub async fn start_at(addr: std::net::SocketAddr, tokens: Tokens) -> std::io::Result<FakePlatform> {
        FakePlatform::serve(addr, tokens, Arc::new(SystemClock::default())).await
    }

    async fn serve(addr: std::net::SocketAddr, tokens: Tokens, clock: Arc<dyn Clock>) -> std::io::Result<FakePlatform> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner { tokens, ..Inner::default() }));
        let answered = Arc::new(tokio::sync::Notify::new());
        let app = Router::new().fallback(answer).with_state((inner.clone(), clock.clone(), answered.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FakePlatform { base, clock, inner, answered, stop: Some(stop) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers the next calls with these troubles, in order.
    pub fn trouble(&self, troubles: &[Trouble]) {
        self.lock().trouble.extend(troubles.iter().copied());
    }

    /// Every call answered successfully and not taken by [`FakePlatform::take`], in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Every call answered with an error.
    pub fn refused(&self) -> Vec<Received> {
        self.lock().refused.clone()
    }

    /// Waits until `n` calls have been answered successfully (or `within` passes).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        self.wait_until(within, |i| i.received.len() >= n).await;
        self.received()
    }

    /// Waits for calls answered successfully and takes them, so a long-running fake keeps
    /// only what was not yet taken (`botc fake-platform` prints and forgets them).
    pub async fn take(&self) -> Vec<Received> {
        self.wait_until(Duration::MAX, |i| !i.received.is_empty()).await;
        std::mem::take(&mut self.lock().received)
    }

    /// Waits until `n` calls have been refused (or `within` passes).
    pub async fn wait_for_refusals(&self, n: usize, within: Duration) -> Vec<Received> {
        self.wait_until(within, |i| i.refused.len() >= n).await;
        self.refused()
    }

    async fn wait_until(&self, within: Duration, done: impl Fn(&Inner) -> bool) {
        let _ = tokio::time::timeout(within, async {
            loop {
                let answered = self.answered.notified();
                tokio::pin!(answered);
                // Listen before looking, so a call answered meanwhile is not missed.
                answered.as_mut().enable();
                if done(&self.lock()) {
                    return;
                }
                answered.await;
            }
        })
        .await;
    }
}

async fn answer(
    State((inner, clock, answered)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let tokens = inner.tokens.clone();
    let (platform, shown, authorized) = if let Some(rest) = path.strip_prefix("/bot") {
        let (token, method_name) = rest.split_once('/').unwrap_or((rest, ""));
        ("telegram", format!("/botTOKEN/{method_name}"), tokens.telegram.is_empty() || token == tokens.telegram)
    } else if path.starts_with("/chat.") {
        ("slack", path.clone(), tokens.slack.is_empty() || auth == format!("Bearer {}", tokens.slack))
    } else if path.starts_with("/channels/") {
        ("discord", path.clone(), tokens.discord.is_empty() || auth == format!("Bot {}", tokens.discord))
    } else if path.starts_with("/webhooks/") {
        // Interaction webhooks are authorized by the token in their path.
        ("discord", path.clone(), true)
    } else {
        return (StatusCode::NOT_FOUND, "no such API").into_response();
    };
    let received = Received { method: method.to_string(), path: shown, body, at: clock.monotonic() };
    if !authorized {
        inner.refused.push(received);
        answered.notify_waiters();
        return match platform {
            "telegram" => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
            )
                .into_response(),
            "slack" => axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response(),
            _ => (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "401: Unauthorized", "code": 0})))
                .into_response(),
        };
    }
    if let Some(t) = inner.trouble.pop_front() {
        inner.refused.push(received);
        answered.notify_waiters();
        return match (platform, t) {
            ("telegram", Trouble::TooMany(d)) => {
                let secs = d.as_secs().max(1);
                let body = json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {secs}"), "parameters": {"retry_after": secs}});
                (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
            }
            ("slack", Trouble::TooMany(d)) => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"ok": false, "error": "ratelimited"})))
                    .into_response();
                let secs = d.as_secs().max(1).to_string();
                r.headers_mut().insert(header::RETRY_AFTER, secs.parse().expect("a number is a header value"));
                r
            }
            (_, Trouble::TooMany(d)) => {
                let body =
                    json!({"message": "You are being rate limited.", "retry_after": d.as_secs_f64(), "global": false});
                let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                let secs = d.as_secs_f64().ceil().to_string();
                r.headers_mut().insert(header::RETRY_AFTER, secs.parse().expect("a number is a header value"));
                r
            }
            ("telegram", Trouble::ServerError) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
            )
                .into_response(),
            (_, Trouble::ServerError) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        };
    }
    inner.answered += 1;
    let n = inner.answered;
    inner.received.push(received);
    answered.notify_waiters();
    match platform {
        "telegram" => axum::Json(json!({"ok": true, "result": {"message_id": n}})).into_response(),
        "slack" => axum::Json(json!({"ok": true, "ts": format!("{n}.000")})).into_response(),
        _ => axum::Json(json!({"id": n.to_string()})).into_response(),
    }
}
