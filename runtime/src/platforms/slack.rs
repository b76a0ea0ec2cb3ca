//! Slack: the Events API and interactivity (button clicks) in, `chat.postMessage` out.

use super::{Answer, Call, Inbound, Incoming, Outcome, Reply, address, json_str, parts};
use crate::vm::Input;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// A section block's text holds 3,000 characters.
pub const MAX_TEXT: usize = 3000;

/// An Events API request (JSON) or an interactivity request (`payload=` form).
pub fn inbound(bot: &str, body: &[u8]) -> Result<Inbound, String> {
    let ok = Answer::json(200, json!({}));
    if body.starts_with(b"payload=") {
        // Decoded by the URL standard's form rules (`+` a space, `%XX` a byte), as Slack encodes it.
        let payload = form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or("the interactivity request has no payload")?;
        let p: Json =
            serde_json::from_str(&payload).map_err(|e| format!("the interactivity payload is not JSON: {e}"))?;
        if json_str(&p, "type").as_deref() != Some("block_actions") {
            return Ok(Inbound::Ignore { reason: "an interaction other than a button click", answer: ok });
        }
        let action = p.pointer("/actions/0").ok_or("the block_actions payload has no actions")?;
        let value = json_str(action, "value").or_else(|| json_str(action, "action_id")).unwrap_or_default();
        let user = p.get("user").unwrap_or(&Json::Null);
        let channel = p
            .pointer("/channel/id")
            .or_else(|| p.pointer("/container/channel_id"))
            .and_then(Json::as_str)
            .ok_or("the block_actions payload has no channel")?;
        let key = json_str(&p, "trigger_id")
            .or_else(|| json_str(action, "action_ts"))
            .ok_or("the block_actions payload has no trigger_id")?;
        let name = json_str(user, "name").or_else(|| json_str(user, "username")).unwrap_or_default();
        let user_id = json_str(user, "id").ok_or("the block_actions payload has no user.id")?;
        let direct = channel.starts_with('D');
        return Ok(Inbound::Event {
            incoming: incoming(format!("slack:{bot}:{key}"), channel, direct, &user_id, name, Input::Button(value)),
            answer: ok,
        });
    }
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("the request is not JSON: {e}"))?;
    match json_str(&v, "type").as_deref() {
        Some("url_verification") => {
            let challenge = json_str(&v, "challenge").ok_or("url_verification has no challenge")?;
            Ok(Inbound::Answer(Answer::json(200, json!({ "challenge": challenge }))))
        }
        Some("event_callback") => {
            let e = v.get("event").ok_or("event_callback has no event")?;
            let event_id = json_str(&v, "event_id").ok_or("event_callback has no event_id")?;
            let kind = json_str(e, "type").unwrap_or_default();
            if kind != "message" && kind != "app_mention" {
                return Ok(Inbound::Ignore { reason: "an event type bots do not handle", answer: ok });
            }
            // The bot's own messages come back as events: answering them would loop.
            if e.get("bot_id").is_some() || json_str(e, "subtype").is_some_and(|s| s != "file_share") {
                return Ok(Inbound::Ignore { reason: "a bot's message or an edit", answer: ok });
            }
            let channel = json_str(e, "channel").ok_or("the event has no channel")?;
            let user = json_str(e, "user").ok_or("the event has no user")?;
            let text = strip_mentions(&json_str(e, "text").unwrap_or_default());
            let direct = json_str(e, "channel_type").as_deref() == Some("im");
            // Events carry no display name; a mention shows as one in Slack.
            let name = format!("<@{user}>");
            Ok(Inbound::Event {
                incoming: incoming(format!("slack:{bot}:{event_id}"), &channel, direct, &user, name, Input::Text(text)),
                answer: ok,
            })
        }
        _ => Ok(Inbound::Ignore { reason: "a request type bots do not handle", answer: ok }),
    }
}

fn incoming(id: String, channel: &str, direct: bool, user: &str, name: String, input: Input) -> Incoming {
    Incoming {
        id,
        conversation: if direct { channel.to_string() } else { format!("{channel}.{user}") },
        user_id: format!("slack:{user}"),
        user_name: name,
        // Slack's events do not say the user's language.
        user_language: String::new(),
        input,
        reply_to: json!({ "channel": channel }).to_string(),
    }
}

/// `<@U123> hello` → `hello`: a mention of the bot is not part of what the user said.
fn strip_mentions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn calls(base: &str, token: &str, reply: &Reply) -> Result<Vec<Call>, String> {
    let to = address(reply)?;
    let channel = json_str(&to, "channel").ok_or("the reply address has no channel")?;
    Ok(parts(reply, MAX_TEXT)
        .map(|(_, part, with_buttons)| {
            let mut body = json!({ "channel": channel, "text": part });
            if with_buttons {
                let buttons: Vec<Json> = reply
                    .buttons
                    .iter()
                    .enumerate()
                    .map(|(n, b)| {
                        let mut e = json!({
                            "type": "button",
                            "text": { "type": "plain_text", "text": b.label },
                            "action_id": format!("botc_{n}"),
                        });
                        match (&b.url, &b.value) {
                            (Some(url), _) => e["url"] = json!(url),
                            (None, value) => e["value"] = json!(value.clone().unwrap_or_else(|| b.label.clone())),
                        }
                        e
                    })
                    .collect();
                body["blocks"] = json!([
                    { "type": "section", "text": { "type": "mrkdwn", "text": part } },
                    { "type": "actions", "elements": buttons },
                ]);
            }
            let mut call = Call::post(format!("{base}/chat.postMessage"), body);
            call.headers.push(("authorization", format!("Bearer {token}")));
            call
        })
        .collect())
}

/// 429 carries `Retry-After` in whole seconds; other errors come as `{"ok": false, "error"}`.
pub fn outcome(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    if status == 429 {
        let secs = retry_after.and_then(|r| r.trim().parse::<u64>().ok()).unwrap_or(1);
        return Outcome::RateLimited(Duration::from_secs(secs));
    }
    if status >= 500 {
        return Outcome::Retry(format!("HTTP {status}"));
    }
    let v: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    match (status, v.get("ok").and_then(Json::as_bool)) {
        (200..=299, Some(true)) => Outcome::Sent,
        _ if json_str(&v, "error").as_deref() == Some("ratelimited") => Outcome::RateLimited(Duration::from_secs(1)),
        _ => Outcome::Failed(json_str(&v, "error").unwrap_or_else(|| format!("HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_verification_answers_the_challenge() {
        let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            inbound("s", body),
            Ok(Inbound::Answer(Answer::json(
                200,
                json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
            )))
        );
    }

    #[test]
    fn messages_and_clicks_become_events_and_the_bots_own_do_not() {
        let msg = br#"{"type":"event_callback","event_id":"Ev08MFMKH6","api_app_id":"A1","event":{"type":"app_mention","channel":"C1","user":"U2","text":"<@U0BOT> order please","ts":"1.2"}}"#;
        let Ok(Inbound::Event { incoming, .. }) = inbound("s", msg) else { panic!("an event") };
        assert_eq!((incoming.id.as_str(), incoming.conversation.as_str()), ("slack:s:Ev08MFMKH6", "C1.U2"));
        assert_eq!(incoming.input, Input::Text("order please".into()));
        let own = br#"{"type":"event_callback","event_id":"Ev2","event":{"type":"message","channel":"D1","bot_id":"B1","text":"hi"}}"#;
        assert!(matches!(inbound("s", own), Ok(Inbound::Ignore { .. })));
        let payload = r#"{"type":"block_actions","trigger_id":"123.456","user":{"id":"U2","name":"ada"},"channel":{"id":"D9"},"actions":[{"action_id":"botc_0","value":"large","action_ts":"1.5"}]}"#;
        let form: String = payload
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let Ok(Inbound::Event { incoming, .. }) = inbound("s", format!("payload={form}").as_bytes()) else {
            panic!("a click")
        };
        assert_eq!((incoming.id.as_str(), incoming.conversation.as_str()), ("slack:s:123.456", "D9"));
        assert_eq!(incoming.input, Input::Button("large".into()));
    }

    #[test]
    fn replies_carry_block_buttons_and_answers_are_classified() {
        let reply = Reply {
            reply_to: r#"{"channel":"C1"}"#.into(),
            text: "Size?".into(),
            buttons: vec![crate::vm::Button { label: "Large".into(), value: Some("large".into()), url: None }],
            first: true,
        };
        let calls = calls("http://fake", "xoxb-1", &reply).expect("calls");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].headers, [("authorization", "Bearer xoxb-1".to_string())]);
        assert_eq!(calls[0].body["blocks"][1]["elements"][0]["value"], "large");
        assert_eq!(outcome(200, None, br#"{"ok":true}"#), Outcome::Sent);
        assert_eq!(outcome(429, Some("30"), b""), Outcome::RateLimited(Duration::from_secs(30)));
        assert_eq!(
            outcome(200, None, br#"{"ok":false,"error":"channel_not_found"}"#),
            Outcome::Failed("channel_not_found".into())
        );
        assert!(matches!(outcome(503, None, b""), Outcome::Retry(_)));
    }
}
