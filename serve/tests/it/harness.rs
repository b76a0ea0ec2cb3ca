//! `botc serve` in-process on a data directory, for the integration tests: start it, talk
//! to it over loopback HTTP, stop it the way SIGTERM does.

use botc_runtime::clock::{Clock, SystemClock};
use botc_serve::ports::{Lease, Leases, Work};
use botc_serve::{Bot, Embedded, Options, Ports, SqliteHistory, history_path, serve};
use serde_json::Value;
use std::sync::Arc;

pub struct Server {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub store: Arc<Embedded>,
    pub history: Arc<SqliteHistory>,
    pub client: reqwest::Client,
    /// The server's clock.
    pub clock: Arc<dyn Clock>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `bots` on a free loopback port with its store in `dir` (2 bus partitions of
/// `capacity` events each).
pub async fn start(bots: Vec<Bot>, options: Options, capacity: usize, dir: &std::path::Path) -> Server {
    start_with(bots, options, capacity, dir, Arc::new(SystemClock::default()), |p, _| p).await
}

/// [`start`] on `clock`, with the ports `adapt` makes of the embedded ones (to fail or slow
/// one of them).
pub async fn start_with(
    bots: Vec<Bot>,
    options: Options,
    capacity: usize,
    dir: &std::path::Path,
    clock: Arc<dyn Clock>,
    adapt: impl FnOnce(Ports, &Arc<Embedded>) -> Ports,
) -> Server {
    let store = Arc::new(Embedded::open(dir, 2, capacity).expect("store opens"));
    let history = Arc::new(SqliteHistory::open(&history_path(dir)).await.expect("history opens"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ports = adapt(Ports::embedded(store.clone(), history.clone(), clock.clone()), &store);
    let task = tokio::spawn(serve(listener, bots, options, ports, async move {
        let _ = rx.await;
    }));
    Server { base, stop: Some(tx), task: Some(task), store, history, client: reqwest::Client::new(), clock }
}

impl Server {
    /// Stops the server the way SIGTERM does and closes its store, so the directory can be
    /// opened again.
    pub async fn shut_down(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("serve task").expect("serve ends cleanly");
        }
        self.store.close();
        self.history.close().await;
    }

    /// The token of web conversation `conv` of `bot`. The server issues conversations
    /// (`POST /api/bots/{bot}/conversations`); a test that knows the deployment's key, as
    /// another process of it would, can name its conversations `c1`, `c2` instead.
    pub async fn token(&self, bot: &str, conv: &str) -> String {
        use botc_serve::ports::FlowRegistry;
        let fresh = botc_serve::random_secret().expect("random bytes");
        let key = self.history.secret(botc_serve::CONVERSATION_KEY.into(), fresh).await.expect("the key");
        botc_runtime::platforms::verify::conversation_token(&key, bot, conv)
    }

    /// The `Authorization` header a client of the web chat sends with `path`: the token of
    /// the conversation it names (in its path, or `?conversation=`), if any.
    pub async fn holder(&self, path: &str) -> Vec<(&'static str, String)> {
        let parts: Vec<&str> = path.split(['/', '?', '&', '=']).collect();
        let named = match parts.as_slice() {
            ["", "api", "bots", bot, "conversations", conv, ..] => Some((*bot, *conv)),
            ["", "api", "bots", bot, "graph", rest @ ..] => {
                rest.windows(2).find(|w| w[0] == "conversation").map(|w| (*bot, w[1]))
            }
            _ => None,
        };
        match named {
            Some((bot, conv)) => vec![("authorization", format!("Bearer {}", self.token(bot, conv).await))],
            None => Vec::new(),
        }
    }

    /// A POST as the web chat's page sends it: JSON, with the conversation's token.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        let mut headers = self.holder(path).await;
        headers.push(("content-type", "application/json".into()));
        self.post_with(path, &headers, body).await
    }

    /// A GET as the web chat's page sends it: with the conversation's token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in self.holder(path).await {
            req = req.header(k, v);
        }
        req.send().await.expect("request")
    }

    /// A POST with exactly these headers.
    pub async fn post_with(&self, path: &str, headers: &[(&str, String)], body: &str) -> reqwest::Response {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.expect("request")
    }

    /// Long-polls web conversation `conv` of `bot` until `done` holds for its transcript
    /// (at most twenty polls of two seconds), and returns what was seen.
    pub async fn poll_until(&self, bot: &str, conv: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut seen: Vec<Value> = Vec::new();
        for _ in 0..20 {
            let after = seen.last().and_then(|m| m["seq"].as_u64()).unwrap_or(0);
            let url = format!("/api/bots/{bot}/conversations/{conv}/messages?after={after}&wait=2");
            let v: Value = self.get(&url).await.json().await.expect("json");
            seen.extend(v["messages"].as_array().cloned().unwrap_or_default());
            if done(&seen) {
                return seen;
            }
        }
        panic!("{bot}'s conversation {conv} never got there: {seen:#?}");
    }

    /// Waits until every event is stepped and every platform reply delivered: after that
    /// nothing more reaches a platform until something new comes in.
    pub async fn settled(&self) {
        use botc_serve::ports::{Bus, ReplyQueue};
        let settled = async {
            loop {
                let events = Bus::depth(&*self.store).await.expect("bus depth");
                let replies = ReplyQueue::depth(&*self.store).await.expect("replies waiting");
                if events == 0 && replies == 0 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), settled).await.expect("botc settled");
    }

    /// Whether `/metrics` has exactly this line.
    pub async fn metric(&self, line: &str) -> bool {
        self.metrics().await.lines().any(|l| l == line)
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.base)).send().await.expect("get").text().await.expect("text")
    }
}

/// A lease on `work` for a test that drives a store's ports itself.
pub async fn lease(store: &Embedded, work: Work) -> Lease {
    store.acquire(work, "test", 0, std::time::Duration::from_secs(3600)).await.expect("lease").expect("free")
}
