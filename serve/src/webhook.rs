//! The gateway for Discord, Slack and Telegram: `POST /webhooks/{platform}/{bot}`. It
//! verifies the request, turns it into an event, publishes it once (platforms redeliver; the
//! dedupe mark and the append are one step) and answers the platform. It runs no flow logic.

use super::Event;
use super::http::{Gateway, error};
use super::metrics::Platformed;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use botc_runtime::platforms::{self, Inbound, Platform, verify};
use std::sync::Arc;
use std::time::Duration;

/// How long a platform event id is remembered, to drop redeliveries: Telegram keeps
/// updates for 24 hours; Slack retries over minutes; Discord tokens live 15 minutes.
fn dedupe_ttl(p: Platform) -> Duration {
    match p {
        Platform::Telegram => Duration::from_secs(25 * 3600),
        Platform::Slack | Platform::Discord | Platform::Web => Duration::from_secs(3600),
    }
}

pub async fn webhook(
    State(s): State<Arc<Gateway>>,
    Path((platform, bot)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let body = match super::http::receive(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(p) = Platform::parse(&platform).filter(|p| *p != Platform::Web) else {
        s.metrics.reject("unknown_bot");
        return error(
            StatusCode::NOT_FOUND,
            "webhooks are /webhooks/discord/BOT, /webhooks/slack/BOT or /webhooks/telegram/BOT",
        );
    };
    let Some(b) = s.bots.get(&bot).filter(|b| b.platform == p) else {
        s.metrics.reject("unknown_bot");
        return error(StatusCode::NOT_FOUND, &format!("no {platform} bot `{bot}`"));
    };
    let h = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let verified = match p {
        Platform::Discord => match &b.secrets.discord_key {
            Some(key) => verify::discord(key, h("x-signature-timestamp"), h("x-signature-ed25519"), &body),
            None => Err(verify::Reject::BadSignature),
        },
        Platform::Slack => match &b.secrets.signing_secret {
            Some(secret) => verify::slack(
                secret.expose().as_bytes(),
                h("x-slack-request-timestamp"),
                h("x-slack-signature"),
                &body,
                s.clock.unix(),
            ),
            None => Err(verify::Reject::BadSignature),
        },
        Platform::Telegram => match &b.secrets.webhook_secret {
            Some(secret) => verify::telegram(secret.expose().as_bytes(), h("x-telegram-bot-api-secret-token")),
            None => Err(verify::Reject::BadSignature),
        },
        Platform::Web => Err(verify::Reject::BadSignature),
    };
    if let Err(why) = verified {
        s.metrics.reject("bad_signature");
        tracing::warn!(platform = p.name(), bot = %b.id, reason = %why, "webhook refused");
        return error(StatusCode::UNAUTHORIZED, "the request's signature does not verify");
    }
    let inbound = match p {
        Platform::Discord => platforms::discord::inbound(&b.id, &body, s.clock.unix()),
        Platform::Slack => platforms::slack::inbound(&b.id, &body),
        Platform::Telegram => platforms::telegram::inbound(&b.id, &body),
        Platform::Web => Err("not a webhook platform".to_string()),
    };
    let (incoming, answer) = match inbound {
        Ok(Inbound::Event { incoming, answer }) => (incoming, answer),
        Ok(Inbound::Answer(answer)) | Ok(Inbound::Ignore { answer, .. }) => return reply(answer),
        Err(why) => {
            s.metrics.reject("bad_request");
            tracing::warn!(platform = p.name(), bot = %b.id, reason = %why, "webhook payload not understood");
            return error(StatusCode::BAD_REQUEST, &why);
        }
    };
    let event = Event {
        id: incoming.id,
        platform: p.name().into(),
        bot: b.id.clone(),
        conversation: incoming.conversation,
        user_id: incoming.user_id,
        user_name: incoming.user_name,
        user_language: incoming.user_language,
        kind: incoming.input,
        received_at: s.clock.unix(),
        reply_to: incoming.reply_to,
    };
    match s.bus.publish_once(event, dedupe_ttl(p)).await {
        Ok(true) => {
            s.metrics.accepted.inc();
            reply(answer)
        }
        Ok(false) => {
            s.metrics.count(Platformed::Duplicates, p.name());
            reply(answer)
        }
        Err(e) => super::http::not_stored(&s, &e),
    }
}

fn reply(answer: platforms::Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (status, axum::Json(answer.body)).into_response()
}
