//! Discord interactions over HTTP: slash commands and button clicks in, deferred responses
//! and follow-up messages out (channel messages once the interaction's token has expired).

use super::{Answer, Call, Inbound, Incoming, Outcome, Reply, address, json_str, parts};
use crate::vm::Input;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// `content` holds 2,000 characters.
pub const MAX_TEXT: usize = 2000;
/// Interaction tokens live 15 minutes; after 14 botc answers in the channel instead.
pub const TOKEN_LIFETIME: u64 = 14 * 60;

/// An interaction. `now` (unix seconds) is remembered so replies know whether the
/// interaction's token is still good.
pub fn inbound(bot: &str, body: &[u8], now: u64) -> Result<Inbound, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("the interaction is not JSON: {e}"))?;
    let kind = v.get("type").and_then(Json::as_u64).ok_or("the interaction has no type")?;
    let (input, answer) = match kind {
        1 => return Ok(Inbound::Answer(Answer::json(200, json!({ "type": 1 })))),
        // A slash command: "the user sees a loading state" until the first reply edits it.
        2 => {
            let data = v.get("data").ok_or("the command has no data")?;
            let mut words = vec![json_str(data, "name").unwrap_or_default()];
            for o in data.get("options").and_then(Json::as_array).into_iter().flatten() {
                match o.get("value") {
                    Some(Json::String(s)) => words.push(s.clone()),
                    Some(other) => words.push(other.to_string()),
                    None => {}
                }
            }
            (Input::Text(words.join(" ")), json!({ "type": 5 }))
        }
        // A button: acknowledged without a loading state; replies are new messages.
        3 => {
            let id = v.pointer("/data/custom_id").and_then(Json::as_str).ok_or("the click has no custom_id")?;
            (Input::Button(id.to_string()), json!({ "type": 6 }))
        }
        4 => return Ok(Inbound::Answer(Answer::json(200, json!({ "type": 8, "data": { "choices": [] } })))),
        _ => {
            return Ok(Inbound::Ignore {
                reason: "an interaction type bots do not handle",
                answer: Answer::json(200, json!({ "type": 6 })),
            });
        }
    };
    let id = json_str(&v, "id").ok_or("the interaction has no id")?;
    let app = json_str(&v, "application_id").ok_or("the interaction has no application_id")?;
    let token = json_str(&v, "token").ok_or("the interaction has no token")?;
    let channel = v
        .get("channel_id")
        .and_then(Json::as_str)
        .or_else(|| v.pointer("/channel/id").and_then(Json::as_str))
        .ok_or("the interaction has no channel")?;
    // In a server the user is under member; in a DM directly.
    let user = v.pointer("/member/user").or_else(|| v.get("user")).ok_or("the interaction has no user")?;
    let user_id = json_str(user, "id").ok_or("the interaction's user has no id")?;
    let name = json_str(user, "global_name").or_else(|| json_str(user, "username")).unwrap_or_default();
    let in_server = v.get("guild_id").is_some();
    Ok(Inbound::Event {
        incoming: Incoming {
            id: format!("discord:{bot}:{id}"),
            conversation: if in_server { format!("{channel}.{user_id}") } else { channel.to_string() },
            user_id: format!("discord:{user_id}"),
            user_name: name,
            // The user's client language.
            user_language: json_str(&v, "locale").unwrap_or_default(),
            input,
            reply_to: json!({ "app": app, "token": token, "channel": channel, "kind": kind, "at": now }).to_string(),
        },
        answer: Answer::json(200, answer),
    })
}

/// The calls that deliver a reply at `now`: the first reply to a command edits the deferred
/// response, later ones are follow-ups; once the token is near its end, channel messages with
/// the bot token.
pub fn calls(base: &str, bot_token: &str, reply: &Reply, now: u64) -> Result<Vec<Call>, String> {
    let to = address(reply)?;
    let app = json_str(&to, "app").ok_or("the reply address has no application")?;
    let token = json_str(&to, "token").ok_or("the reply address has no token")?;
    let channel = json_str(&to, "channel").ok_or("the reply address has no channel")?;
    let at = to.get("at").and_then(Json::as_u64).unwrap_or(0);
    let command = to.get("kind").and_then(Json::as_u64) == Some(2);
    let fresh = now.saturating_sub(at) < TOKEN_LIFETIME;
    Ok(parts(reply, MAX_TEXT)
        .map(|(i, part, with_buttons)| {
            let mut body = json!({ "content": part });
            if with_buttons {
                body["components"] = components(&reply.buttons);
            }
            if !fresh {
                let mut call = Call::post(format!("{base}/channels/{channel}/messages"), body);
                call.headers.push(("authorization", format!("Bot {bot_token}")));
                call
            } else if reply.first && command && i == 0 {
                Call {
                    method: "PATCH",
                    url: format!("{base}/webhooks/{app}/{token}/messages/@original"),
                    headers: Vec::new(),
                    body,
                }
            } else {
                Call::post(format!("{base}/webhooks/{app}/{token}"), body)
            }
        })
        .collect())
}

/// Action rows of up to five buttons (at most five rows).
fn components(buttons: &[crate::vm::Button]) -> Json {
    let rows: Vec<Json> = buttons
        .chunks(5)
        .take(5)
        .map(|row| {
            let row: Vec<Json> = row
                .iter()
                .map(|b| match (&b.url, &b.value) {
                    (Some(url), _) => json!({ "type": 2, "style": 5, "label": b.label, "url": url }),
                    (None, value) => {
                        let id: String = value.clone().unwrap_or_else(|| b.label.clone()).chars().take(100).collect();
                        json!({ "type": 2, "style": 1, "label": b.label, "custom_id": id })
                    }
                })
                .collect();
            json!({ "type": 1, "components": row })
        })
        .collect();
    Json::Array(rows)
}

/// A 429's body says `retry_after` in (fractional) seconds; the header only in whole ones.
pub fn outcome(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    if status == 429 {
        let v: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
        let secs = v
            .get("retry_after")
            .and_then(Json::as_f64)
            .or_else(|| retry_after.and_then(|r| r.trim().parse().ok()))
            .unwrap_or(1.0);
        return Outcome::RateLimited(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
    }
    if (200..300).contains(&status) {
        return Outcome::Sent;
    }
    let v: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    let what = json_str(&v, "message").unwrap_or_else(|| format!("HTTP {status}"));
    if status >= 500 { Outcome::Retry(what) } else { Outcome::Failed(what) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_is_answered_with_a_pong() {
        assert_eq!(
            inbound("d", br#"{"type":1,"id":"1"}"#, 0),
            Ok(Inbound::Answer(Answer::json(200, json!({"type": 1}))))
        );
    }

    #[test]
    fn commands_and_clicks_become_events_with_deferred_answers() {
        let cmd = br#"{"type":2,"id":"995","application_id":"827","token":"tok","channel_id":"C5","guild_id":"G1","member":{"user":{"id":"170","username":"miles","global_name":"Miles"}},"data":{"name":"order","options":[{"name":"size","value":"large"},{"name":"n","value":2}]}}"#;
        let Ok(Inbound::Event { incoming, answer }) = inbound("d", cmd, 1000) else { panic!("an event") };
        assert_eq!(answer.body, json!({"type": 5}));
        assert_eq!((incoming.id.as_str(), incoming.conversation.as_str()), ("discord:d:995", "C5.170"));
        assert_eq!((incoming.input, incoming.user_name.as_str()), (Input::Text("order large 2".into()), "Miles"));
        let click = br#"{"type":3,"id":"996","application_id":"827","token":"tok2","channel_id":"DM1","user":{"id":"170","username":"miles"},"data":{"custom_id":"large","component_type":2}}"#;
        let Ok(Inbound::Event { incoming, answer }) = inbound("d", click, 1000) else { panic!("an event") };
        assert_eq!(answer.body, json!({"type": 6}));
        assert_eq!((incoming.conversation.as_str(), incoming.input), ("DM1", Input::Button("large".into())));
        assert!(inbound("d", br#"{"type":2}"#, 0).unwrap_err().contains("data"));
    }

    #[test]
    fn replies_edit_the_deferred_answer_then_follow_up_then_use_the_channel() {
        let reply = |first: bool| Reply {
            reply_to: json!({"app": "827", "token": "tok", "channel": "C5", "kind": 2, "at": 1000}).to_string(),
            text: "y".repeat(2500),
            buttons: vec![crate::vm::Button { label: "Menu".into(), value: None, url: Some("https://m".into()) }],
            first,
        };
        let c = calls("http://fake", "BOT", &reply(true), 1010).expect("calls");
        assert_eq!((c[0].method, c[0].url.as_str()), ("PATCH", "http://fake/webhooks/827/tok/messages/@original"));
        assert_eq!((c[1].method, c[1].url.as_str()), ("POST", "http://fake/webhooks/827/tok"));
        assert_eq!(c[1].body["components"][0]["components"][0]["style"], 5);
        let late = calls("http://fake", "BOT", &reply(false), 1000 + 15 * 60).expect("calls");
        assert_eq!(late[0].url, "http://fake/channels/C5/messages");
        assert_eq!(late[0].headers, [("authorization", "Bot BOT".to_string())]);
    }

    #[test]
    fn a_429_uses_the_bodys_precise_retry_after() {
        let body = br#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#;
        assert_eq!(outcome(429, Some("65"), body), Outcome::RateLimited(Duration::from_secs_f64(64.57)));
        assert_eq!(outcome(429, Some("3"), b""), Outcome::RateLimited(Duration::from_secs(3)));
        assert_eq!(outcome(204, None, b""), Outcome::Sent);
        assert_eq!(
            outcome(404, None, br#"{"message":"Unknown Webhook","code":10015}"#),
            Outcome::Failed("Unknown Webhook".into())
        );
    }
}
