//! Telegram's Bot API: webhook updates in, `sendMessage` and `answerCallbackQuery` out.

use super::{Answer, Call, Inbound, Incoming, Outcome, Reply, address, json_str, parts};
use crate::vm::Input;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// `sendMessage` takes 1-4096 characters.
pub const MAX_TEXT: usize = 4096;
/// `callback_data` is 1-64 bytes.
pub const MAX_CALLBACK_DATA: usize = 64;

/// A webhook update. Messages and button presses (callback queries) become events;
/// everything else is acknowledged and ignored.
pub fn inbound(bot: &str, body: &[u8]) -> Result<Inbound, String> {
    let u: Json = serde_json::from_slice(body).map_err(|e| format!("the update is not JSON: {e}"))?;
    let update_id = u.get("update_id").and_then(Json::as_i64).ok_or("the update has no update_id")?;
    let ok = Answer::json(200, json!({}));
    let id = format!("telegram:{bot}:{update_id}");
    if let Some(m) = u.get("message") {
        let chat = m.pointer("/chat/id").and_then(Json::as_i64).ok_or("the message has no chat.id")?;
        let from = m.get("from").unwrap_or(&Json::Null);
        if from.get("is_bot").and_then(Json::as_bool) == Some(true) {
            return Ok(Inbound::Ignore { reason: "a message from a bot", answer: ok });
        }
        // Photos, stickers and the like reach the flow as empty text (it will re-ask), so
        // no user is ignored.
        let text = json_str(m, "text").or_else(|| json_str(m, "caption")).unwrap_or_default();
        let private = m.pointer("/chat/type").and_then(Json::as_str) == Some("private");
        return Ok(Inbound::Event { incoming: incoming(id, chat, private, from, Input::Text(text), None), answer: ok });
    }
    if let Some(q) = u.get("callback_query") {
        let from = q.get("from").unwrap_or(&Json::Null);
        let chat =
            q.pointer("/message/chat/id").and_then(Json::as_i64).ok_or("the callback query has no message.chat.id")?;
        let private = q.pointer("/message/chat/type").and_then(Json::as_str) == Some("private");
        let data = json_str(q, "data").unwrap_or_default();
        let query = json_str(q, "id").ok_or("the callback query has no id")?;
        return Ok(Inbound::Event {
            incoming: incoming(id, chat, private, from, Input::Button(data), Some(query)),
            answer: ok,
        });
    }
    Ok(Inbound::Ignore { reason: "an update that is neither a message nor a button press", answer: ok })
}

fn incoming(id: String, chat: i64, private: bool, from: &Json, input: Input, query: Option<String>) -> Incoming {
    let user = from.get("id").and_then(Json::as_i64).unwrap_or(chat);
    let name = [json_str(from, "first_name"), json_str(from, "last_name")].into_iter().flatten().collect::<Vec<_>>();
    let name = if name.is_empty() { json_str(from, "username").unwrap_or_default() } else { name.join(" ") };
    Incoming {
        id,
        // In a group every member has their own conversation with the bot.
        conversation: if private { chat.to_string() } else { format!("{chat}.{user}") },
        user_id: format!("telegram:{user}"),
        user_name: name,
        user_language: json_str(from, "language_code").unwrap_or_default(),
        input,
        reply_to: json!({ "chat": chat, "callback": query }).to_string(),
    }
}

/// The calls that deliver one reply: the button press is answered first (so the user's
/// client stops spinning), then the text, split at Telegram's limit, with the buttons on the
/// last part.
pub fn calls(base: &str, token: &str, reply: &Reply) -> Result<Vec<Call>, String> {
    let to = address(reply)?;
    let chat = to.get("chat").and_then(Json::as_i64).ok_or("the reply address has no chat")?;
    let mut calls = Vec::new();
    if reply.first
        && let Some(q) = to.get("callback").and_then(Json::as_str)
    {
        calls.push(Call::post(format!("{base}/bot{token}/answerCallbackQuery"), json!({ "callback_query_id": q })));
    }
    for (_, part, with_buttons) in parts(reply, MAX_TEXT) {
        let mut body = json!({ "chat_id": chat, "text": part });
        if with_buttons {
            let row: Vec<Json> = reply
                .buttons
                .iter()
                .map(|b| match (&b.url, &b.value) {
                    (Some(url), _) => json!({ "text": b.label, "url": url }),
                    (None, value) => {
                        let data = value.clone().unwrap_or_else(|| b.label.clone());
                        json!({ "text": b.label, "callback_data": truncate_bytes(&data, MAX_CALLBACK_DATA) })
                    }
                })
                .map(|b| json!([b]))
                .collect();
            body["reply_markup"] = json!({ "inline_keyboard": row });
        }
        calls.push(Call::post(format!("{base}/bot{token}/sendMessage"), body));
    }
    Ok(calls)
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What an API answer means: `{"ok": true}`, flood control with `parameters.retry_after`,
/// a server error to retry, or an error that retrying cannot fix.
pub fn outcome(status: u16, _retry_after: Option<&str>, body: &[u8]) -> Outcome {
    let v: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    if status == 429 {
        let secs = v.pointer("/parameters/retry_after").and_then(Json::as_u64).unwrap_or(1);
        return Outcome::RateLimited(Duration::from_secs(secs));
    }
    if (200..300).contains(&status) && v.get("ok").and_then(Json::as_bool) != Some(false) {
        return Outcome::Sent;
    }
    let what = json_str(&v, "description").unwrap_or_else(|| format!("HTTP {status}"));
    if status >= 500 { Outcome::Retry(what) } else { Outcome::Failed(what) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_button_presses_become_events() {
        let msg = br#"{"update_id":10,"message":{"message_id":1,"from":{"id":42,"is_bot":false,"first_name":"Ada","last_name":"L"},"chat":{"id":42,"type":"private"},"text":"hi"}}"#;
        let Ok(Inbound::Event { incoming, answer }) = inbound("tg", msg) else { panic!("an event") };
        assert_eq!(answer.status, 200);
        assert_eq!(
            (
                incoming.id.as_str(),
                incoming.conversation.as_str(),
                incoming.user_id.as_str(),
                incoming.user_name.as_str()
            ),
            ("telegram:tg:10", "42", "telegram:42", "Ada L")
        );
        assert_eq!(incoming.input, Input::Text("hi".into()));
        let press = br#"{"update_id":11,"callback_query":{"id":"q1","from":{"id":7,"first_name":"Bo"},"message":{"message_id":2,"chat":{"id":-100,"type":"group"}},"chat_instance":"x","data":"large"}}"#;
        let Ok(Inbound::Event { incoming, .. }) = inbound("tg", press) else { panic!("an event") };
        assert_eq!(incoming.conversation, "-100.7", "group members have their own conversations");
        assert_eq!(incoming.input, Input::Button("large".into()));
        assert_eq!(incoming.reply_to, r#"{"callback":"q1","chat":-100}"#);
    }

    #[test]
    fn other_updates_are_acknowledged_and_bad_ones_explained() {
        let edited = br#"{"update_id":12,"edited_message":{"chat":{"id":1}}}"#;
        assert!(matches!(inbound("tg", edited), Ok(Inbound::Ignore { .. })));
        assert!(inbound("tg", b"nope").unwrap_err().contains("not JSON"));
        assert!(inbound("tg", b"{}").unwrap_err().contains("update_id"));
        assert!(inbound("tg", br#"{"update_id":1,"message":{}}"#).unwrap_err().contains("chat.id"));
    }

    #[test]
    fn replies_answer_the_press_split_long_text_and_carry_buttons() {
        let reply = Reply {
            reply_to: r#"{"chat":42,"callback":"q1"}"#.into(),
            text: "x".repeat(5000),
            buttons: vec![crate::vm::Button { label: "Yes".into(), value: Some("yes".into()), url: None }],
            first: true,
        };
        let calls = calls("http://fake", "T0K", &reply).expect("calls");
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].url, "http://fake/botT0K/answerCallbackQuery");
        assert_eq!(calls[1].body["text"].as_str().map(str::len), Some(4096));
        assert!(calls[1].body.get("reply_markup").is_none());
        assert_eq!(
            calls[2].body["reply_markup"]["inline_keyboard"],
            json!([[{"text": "Yes", "callback_data": "yes"}]])
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(outcome(200, None, br#"{"ok":true,"result":{}}"#), Outcome::Sent);
        let flood = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        assert_eq!(outcome(429, None, flood), Outcome::RateLimited(Duration::from_secs(5)));
        assert!(matches!(outcome(502, None, b"bad gateway"), Outcome::Retry(_)));
        assert_eq!(
            outcome(400, None, br#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
            Outcome::Failed("Bad Request: chat not found".into())
        );
    }
}
