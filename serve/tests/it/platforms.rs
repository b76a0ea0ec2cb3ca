//! Discord, Slack and Telegram end to end: a signed webhook in over real HTTP, the flow's
//! step, and the reply at a fake platform API on loopback that answers like the real one,
//! including 429s and 5xx.

use crate::harness::Server;
use crate::load;
use botc_runtime::platforms::limiter::Limit;
use botc_runtime::platforms::verify::{DiscordKey, slack_sign};
use botc_serve::fake::{FakePlatform, Received, Tokens, Trouble};
use botc_serve::{ApiBases, Bot, Options, Platform, Secret};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const FLOW: &str = r#"
flow: shop
start: ask_size
vars:
  size: text
nodes:
  ask_size:
    ask: "Hi {{ user.name }}! Which size?"
    into: size
    expect: { choice: [small, large] }
    next: confirm
  confirm:
    say: "A {{ size }} it is."
    next: done
  done:
    end:
"#;

const TG_TOKEN: &str = "123:ABC";
const TG_SECRET: &str = "wh_secret-1";
const SLACK_TOKEN: &str = "xoxb-1";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const DISCORD_TOKEN: &str = "discord-bot-token";

fn discord_signer() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn bot(id: &str, platform: Platform) -> Bot {
    let mut b = Bot::web(id, id, Arc::new(load(FLOW)));
    b.platform = platform;
    (b.per_bot, b.per_conversation) = platform.limits();
    let s = &mut b.secrets;
    match platform {
        Platform::Telegram => {
            s.token = Some(Secret::new(TG_TOKEN.into()));
            s.webhook_secret = Some(Secret::new(TG_SECRET.into()));
        }
        Platform::Slack => {
            s.token = Some(Secret::new(SLACK_TOKEN.into()));
            s.signing_secret = Some(Secret::new(SLACK_SECRET.into()));
        }
        Platform::Discord => {
            s.token = Some(Secret::new(DISCORD_TOKEN.into()));
            let public: String =
                discord_signer().verifying_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            s.discord_key = Some(DiscordKey::parse(&public).expect("key"));
        }
        Platform::Web => {}
    }
    b
}

/// botc serving `bots` against `fake`, both on one clock: the times the fake stamps on calls
/// are the times the dispatcher sent them by its own clock.
async fn start(bots: Vec<Bot>, fake: &FakePlatform, dir: &std::path::Path) -> Server {
    let api = ApiBases { discord: fake.base.clone(), slack: fake.base.clone(), telegram: fake.base.clone() };
    let options = Options { api, ..Options::default() };
    crate::harness::start_with(bots, options, 1000, dir, fake.clock.clone(), |p, _| p).await
}

/// A webhook request: its status and body.
async fn hook(s: &Server, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let r = s.post_with(path, headers, body).await;
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn telegram(s: &Server, bot: &str, secret: &str, update: &Value) -> (u16, String) {
    let headers = [("x-telegram-bot-api-secret-token", secret.to_string())];
    hook(s, &format!("/webhooks/telegram/{bot}"), &headers, &update.to_string()).await
}

fn tg_message(update_id: i64, chat: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "from": {"id": chat, "is_bot": false, "first_name": "Ada"}, "chat": {"id": chat, "type": "private"}, "text": text}})
}

fn tg_press(update_id: i64, chat: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {"id": format!("q{update_id}"), "from": {"id": chat, "first_name": "Ada"}, "message": {"message_id": 1, "chat": {"id": chat, "type": "private"}}, "chat_instance": "i", "data": data}})
}

fn texts(got: &[Received]) -> Vec<String> {
    got.iter().map(|r| format!("{} {}", r.path, r.body["text"].as_str().unwrap_or(""))).collect()
}

fn tokens() -> Tokens {
    Tokens { telegram: TG_TOKEN.into(), slack: SLACK_TOKEN.into(), discord: DISCORD_TOKEN.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_webhook_to_reply_with_buttons_duplicates_and_bad_secrets() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("tg", Platform::Telegram)], &fake, dir.path()).await;
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_message(1, 42, "hi")).await, (200, "{}".into()));
    let got = fake.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].path, "/botTOKEN/sendMessage");
    assert_eq!(
        got[0].body,
        json!({"chat_id": 42, "text": "Hi Ada! Which size?", "reply_markup": {"inline_keyboard": [
            [{"text": "small", "callback_data": "small"}], [{"text": "large", "callback_data": "large"}]]}})
    );
    // Telegram redelivers an update it thinks failed: the same update_id is taken once.
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_message(1, 42, "hi")).await.0, 200);
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_press(2, 42, "large")).await.0, 200);
    let got = fake.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(
        texts(&got),
        [
            "/botTOKEN/sendMessage Hi Ada! Which size?",
            "/botTOKEN/answerCallbackQuery ",
            "/botTOKEN/sendMessage A large it is."
        ]
    );
    assert_eq!(got[1].body, json!({"callback_query_id": "q2"}));
    assert!(s.metric("botc_webhook_duplicates_total{platform=\"telegram\"} 1").await);
    // A wrong or missing secret token is refused, and nothing reaches the flow.
    for secret in ["wrong", "", "wh_secret-", "wh_secret-11"] {
        assert_eq!(telegram(&s, "tg", secret, &tg_message(3, 42, "hi")).await.0, 401, "{secret:?}");
    }
    let (status, _) = hook(&s, "/webhooks/telegram/tg", &[], &tg_message(3, 42, "hi").to_string()).await;
    assert_eq!(status, 401);
    assert_eq!(hook(&s, "/webhooks/telegram/nobot", &[], "{}").await.0, 404);
    assert_eq!(telegram(&s, "tg", TG_SECRET, &json!({"no": "update_id"})).await.0, 400);
    s.settled().await;
    assert_eq!(fake.received().len(), 3, "refused requests caused no replies");
    assert!(s.metric("botc_events_rejected_total{reason=\"bad_signature\"} 5").await);
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_challenge_events_retries_and_clicks() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("sl", Platform::Slack)], &fake, dir.path()).await;
    let signed = |body: &str, ts: u64| {
        let ts = ts.to_string();
        vec![
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-signature", slack_sign(SLACK_SECRET.as_bytes(), &ts, body.as_bytes())),
        ]
    };
    let now = s.clock.unix();
    let challenge = r#"{"token":"t","challenge":"abc123","type":"url_verification"}"#;
    assert_eq!(
        hook(&s, "/webhooks/slack/sl", &signed(challenge, now), challenge).await,
        (200, r#"{"challenge":"abc123"}"#.into())
    );
    let event = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"D1","channel_type":"im","user":"U1","text":"hello"}}"#;
    assert_eq!(hook(&s, "/webhooks/slack/sl", &signed(event, now), event).await.0, 200);
    // Slack's retry of the same event (X-Slack-Retry-Num) is taken once.
    let mut retry = signed(event, now);
    retry.push(("x-slack-retry-num", "1".into()));
    assert_eq!(hook(&s, "/webhooks/slack/sl", &retry, event).await.0, 200);
    let got = fake.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].path, "/chat.postMessage");
    assert_eq!(got[0].body["channel"], "D1");
    assert_eq!(got[0].body["blocks"][1]["elements"][1]["value"], "large");
    // A button click arrives form-encoded.
    let payload = json!({"type": "block_actions", "trigger_id": "t1", "user": {"id": "U1", "name": "ada"}, "channel": {"id": "D1"}, "actions": [{"action_id": "botc_0", "value": "small"}]});
    let form = format!("payload={}", payload.to_string().bytes().map(|b| format!("%{b:02X}")).collect::<String>());
    assert_eq!(hook(&s, "/webhooks/slack/sl", &signed(&form, now), &form).await.0, 200);
    let got = fake.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(texts(&got)[1], "/chat.postMessage A small it is.");
    assert!(s.metric("botc_webhook_duplicates_total{platform=\"slack\"} 1").await);
    // Stale, future and wrongly signed requests are refused. The clock is real here, and
    // seconds have passed since `now`: well outside the 5-minute window (its exact edges
    // are checked in platforms::verify's tests).
    let now = s.clock.unix();
    assert_eq!(hook(&s, "/webhooks/slack/sl", &signed(event, now - 400), event).await.0, 401);
    assert_eq!(hook(&s, "/webhooks/slack/sl", &signed(event, now + 400), event).await.0, 401);
    let mut forged = signed(event, now);
    forged[1].1 = slack_sign(b"not the secret", &now.to_string(), event.as_bytes());
    assert_eq!(hook(&s, "/webhooks/slack/sl", &forged, event).await.0, 401);
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_ping_commands_and_clicks() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("dc", Platform::Discord)], &fake, dir.path()).await;
    let key = discord_signer();
    let signed = |body: &str| {
        let ts = "1700000000".to_string();
        let sig = key.sign(format!("{ts}{body}").as_bytes());
        let hex: String = sig.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        vec![("x-signature-timestamp", ts), ("x-signature-ed25519", hex)]
    };
    let ping = r#"{"type":1,"id":"1","application_id":"A"}"#;
    assert_eq!(hook(&s, "/webhooks/discord/dc", &signed(ping), ping).await, (200, r#"{"type":1}"#.into()));
    // Discord probes with bad signatures and drops endpoints that accept them.
    let mut bad = signed(ping);
    let flipped = if bad[1].1.starts_with("00") { "11" } else { "00" };
    bad[1].1.replace_range(0..2, flipped);
    assert_eq!(hook(&s, "/webhooks/discord/dc", &bad, ping).await.0, 401);
    assert_eq!(
        hook(&s, "/webhooks/discord/dc", &signed(ping), r#"{"type":1,"id":"2","application_id":"A"}"#).await.0,
        401
    );
    assert_eq!(hook(&s, "/webhooks/discord/dc", &[], ping).await.0, 401);
    let command = r#"{"type":2,"id":"9","application_id":"A","token":"T","channel_id":"C","user":{"id":"U","username":"miles","global_name":"Miles"},"data":{"name":"order"}}"#;
    assert_eq!(hook(&s, "/webhooks/discord/dc", &signed(command), command).await, (200, r#"{"type":5}"#.into()));
    let got = fake.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("PATCH", "/webhooks/A/T/messages/@original"));
    assert_eq!(got[0].body["content"], "Hi Miles! Which size?");
    assert_eq!(got[0].body["components"][0]["components"][1]["custom_id"], "large");
    let click = r#"{"type":3,"id":"10","application_id":"A","token":"T2","channel_id":"C","user":{"id":"U","username":"miles"},"data":{"custom_id":"large","component_type":2}}"#;
    assert_eq!(hook(&s, "/webhooks/discord/dc", &signed(click), click).await, (200, r#"{"type":6}"#.into()));
    let got = fake.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!((got[1].method.as_str(), got[1].path.as_str()), ("POST", "/webhooks/A/T2"));
    assert_eq!(got[1].body["content"], "A large it is.");
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_server_errors_delay_replies_but_lose_and_repeat_none() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("tg", Platform::Telegram)], &fake, dir.path()).await;
    fake.trouble(&[
        Trouble::TooMany(Duration::from_secs(1)),
        Trouble::ServerError,
        Trouble::TooMany(Duration::from_secs(1)),
    ]);
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_message(1, 42, "hi")).await.0, 200);
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_press(2, 42, "small")).await.0, 200);
    // About 4 s alone (1 s after each 429, a back-off after the 500); the deadline is for a
    // loaded machine.
    let got = fake.wait_for(3, Duration::from_secs(60)).await;
    assert_eq!(
        texts(&got),
        [
            "/botTOKEN/sendMessage Hi Ada! Which size?",
            "/botTOKEN/answerCallbackQuery ",
            "/botTOKEN/sendMessage A small it is."
        ],
        "every reply once, in order (refused: {:#?})",
        fake.refused()
    );
    let refused = fake.refused();
    assert_eq!(refused.len(), 3);
    // After each 429 the bot waited at least the second it was told to.
    assert!(got[0].at >= refused[0].at + Duration::from_secs(1), "{:?} then {:?}", refused[0].at, got[0].at);
    assert!(got[2].at >= refused[2].at + Duration::from_secs(1), "{:?} then {:?}", refused[2].at, got[2].at);
    s.settled().await;
    assert_eq!(fake.received().len(), 3, "nothing was sent twice");
    assert!(s.metric("botc_platform_rate_limited_total{platform=\"telegram\"} 2").await);
    assert!(s.metric("botc_replies_retried_total{platform=\"telegram\"} 1").await);
    assert!(s.metric("botc_replies_delivered_total{platform=\"telegram\"} 2").await);
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_over_budget_waits_while_another_keeps_sending() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let mut slow = bot("slow", Platform::Telegram);
    slow.per_bot = Limit::per_second(2);
    let s = start(vec![slow, bot("fast", Platform::Telegram)], &fake, dir.path()).await;
    for chat in 1..=8 {
        assert_eq!(telegram(&s, "slow", TG_SECRET, &tg_message(chat, chat, "hi")).await.0, 200);
    }
    assert_eq!(telegram(&s, "fast", TG_SECRET, &tg_message(100, 100, "hi")).await.0, 200);
    let got = fake.wait_for(9, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 9);
    let fast = got.iter().position(|r| r.body["chat_id"] == 100).expect("the fast bot's reply");
    assert!(fast <= 3, "the fast bot was not held up by the slow one: position {fast}");
    // The slow bot's 8 sends at 2/s (a burst of 2, then one every 500 ms) span about 3 s.
    let slow: Vec<Duration> = got.iter().filter(|r| r.body["chat_id"] != 100).map(|r| r.at).collect();
    // The fake stamps a call when it arrives, so independent sends reach it with the jitter
    // of loopback HTTP on top of the dispatcher's spacing (exact spacing is the limiter's
    // unit test, on a manual clock): allow 50 ms of it.
    let jitter = Duration::from_millis(50);
    let span = slow[7] - slow[0];
    assert!(span + jitter >= Duration::from_secs(3), "the slow bot kept to 2/s: 8 sends in {span:?}");
    for w in slow.windows(3) {
        assert!(w[2] - w[0] + jitter >= Duration::from_millis(500), "never more than 2 in any half second: {slow:?}");
    }
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_waiting_at_a_stop_are_delivered_after_the_restart() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("tg", Platform::Telegram)], &fake, dir.path()).await;
    // The platform is down: the reply waits in the queue.
    fake.trouble(&[Trouble::ServerError; 50]);
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_message(1, 42, "hi")).await.0, 200);
    fake.wait_for_refusals(1, Duration::from_secs(10)).await;
    assert!(fake.received().is_empty());
    assert!(s.metric("botc_replies_waiting 1").await);
    s.shut_down().await;
    let fake2 = FakePlatform::start(tokens()).await.expect("fake");
    let s = start(vec![bot("tg", Platform::Telegram)], &fake2, dir.path()).await;
    let got = fake2.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(texts(&got), ["/botTOKEN/sendMessage Hi Ada! Which size?"]);
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_discord_429s_and_5xx_are_waited_out_in_their_own_shapes() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("sl", Platform::Slack), bot("dc", Platform::Discord)], &fake, dir.path()).await;
    // Slack's 429 says Retry-After: 1 (header); then a 500.
    fake.trouble(&[Trouble::TooMany(Duration::from_secs(1)), Trouble::ServerError]);
    let now = s.clock.unix().to_string();
    let event = r#"{"type":"event_callback","event_id":"Ev9","event":{"type":"message","channel":"D1","channel_type":"im","user":"U1","text":"hi"}}"#;
    let headers = [
        ("x-slack-request-timestamp", now.clone()),
        ("x-slack-signature", slack_sign(SLACK_SECRET.as_bytes(), &now, event.as_bytes())),
    ];
    assert_eq!(hook(&s, "/webhooks/slack/sl", &headers, event).await.0, 200);
    let got = fake.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(texts(&got), ["/chat.postMessage Hi <@U1>! Which size?"]);
    let refused = fake.refused();
    assert_eq!(refused.len(), 2);
    assert!(got[0].at >= refused[0].at + Duration::from_secs(1), "Slack's Retry-After was kept");
    // Discord's 429 carries retry_after in the body (fractions of a second).
    fake.trouble(&[Trouble::TooMany(Duration::from_millis(1500))]);
    let key = discord_signer();
    let command = r#"{"type":2,"id":"77","application_id":"A","token":"T","channel_id":"C","user":{"id":"U","username":"m"},"data":{"name":"order"}}"#;
    let ts = "1700000000".to_string();
    let sig: String =
        key.sign(format!("{ts}{command}").as_bytes()).to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let headers = [("x-signature-timestamp", ts), ("x-signature-ed25519", sig)];
    assert_eq!(hook(&s, "/webhooks/discord/dc", &headers, command).await.0, 200);
    let got = fake.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2);
    let refused = fake.refused();
    assert_eq!(refused.len(), 3);
    assert!(
        got[1].at >= refused[2].at + Duration::from_millis(1500),
        "Discord's 1.5 s was kept: {:?} {:?}",
        refused[2].at,
        got[1].at
    );
    s.settled().await;
    assert_eq!(fake.received().len(), 2, "each reply once");
    s.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_apis_are_called_over_tls() {
    use botc_serve::HttpClient;
    use botc_serve::ports::PlatformClient;
    use tokio::io::AsyncReadExt;
    // A plain TCP listener: it records what the client says first, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("addr").port();
    let first = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("a connection");
        let mut buf = [0u8; 6];
        conn.read_exact(&mut buf).await.expect("bytes");
        buf
    });
    let call = botc_runtime::platforms::Call {
        method: "POST",
        url: format!("https://127.0.0.1:{port}/bot{TG_TOKEN}/sendMessage"),
        headers: vec![],
        body: json!({"chat_id": 1, "text": "hi"}),
    };
    let err = HttpClient::default().call(call).await.expect_err("the handshake cannot succeed");
    let hello = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the client connected (an https URL is not refused outright)")
        .expect("listener");
    // A TLS record of type handshake (22) carrying a ClientHello (1).
    assert_eq!((hello[0], hello[5]), (22, 1), "the client opened with TLS: {hello:?}");
    assert!(!err.contains(TG_TOKEN), "the error does not show the URL with its token: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_api_cannot_read_or_move_a_platform_conversation() {
    let fake = FakePlatform::start(tokens()).await.expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let s = start(vec![bot("tg", Platform::Telegram)], &fake, dir.path()).await;
    // A Telegram user in chat 42 is asked for a size.
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_message(1, 42, "hi")).await.0, 200);
    assert_eq!(texts(&fake.wait_for(1, Duration::from_secs(30)).await), ["/botTOKEN/sendMessage Hi Ada! Which size?"]);
    // Someone on the web, knowing only the chat id, starts a web conversation "42" of their
    // own: it does not show the Telegram user's messages, and it is answered on the web.
    let post = s.post("/api/bots/tg/conversations/42/messages", r#"{"button": "large"}"#).await;
    assert_eq!(post.status(), 202);
    let web = s.poll_until("tg", "42", |seen| seen.iter().any(|m| m["from"] == "bot")).await;
    assert_eq!((&web[0]["from"], &web[0]["text"]), (&json!("user"), &json!("large")), "{web:#?}");
    assert!(web.iter().all(|m| m["text"] != "hi" && m["text"] != "A large it is."), "{web:#?}");
    // The Telegram conversation did not move: it still waits for its size.
    assert_eq!(telegram(&s, "tg", TG_SECRET, &tg_press(2, 42, "small")).await.0, 200);
    let got = fake.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(
        texts(&got),
        [
            "/botTOKEN/sendMessage Hi Ada! Which size?",
            "/botTOKEN/answerCallbackQuery ",
            "/botTOKEN/sendMessage A small it is."
        ]
    );
    s.shut_down().await;
}
