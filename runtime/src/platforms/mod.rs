//! Discord, Slack and Telegram: what botc needs to know about each platform's webhooks and
//! APIs, as pure code (no I/O): verifying requests ([`verify`]), turning payloads into
//! events, building the API calls that deliver a reply, reading the answers (including
//! rate limits), and the limiter ([`limiter`]). The gateway and the dispatcher in `serve`
//! do the I/O around it.

pub mod discord;
pub mod limiter;
pub mod slack;
pub mod telegram;
pub mod verify;

use crate::vm::{Button, Input};
use serde_json::Value as Json;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    Web,
    Discord,
    Slack,
    Telegram,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Web => "web",
            Platform::Discord => "discord",
            Platform::Slack => "slack",
            Platform::Telegram => "telegram",
        }
    }

    /// The platform's own send limits: per bot, and per conversation (PLATFORMS.md):
    /// Telegram 30/s per bot and about 1/s per chat, short bursts allowed; Slack about 1/s
    /// per channel; Discord 50/s per bot token.
    pub fn limits(self) -> (limiter::Limit, limiter::Limit) {
        use limiter::Limit;
        let chat = Limit { rate: 1, period: Duration::from_secs(1), burst: 3 };
        match self {
            Platform::Telegram => (Limit::per_second(30), chat),
            Platform::Slack => (Limit::per_second(50), chat),
            Platform::Discord => (Limit::per_second(50), Limit::per_second(5)),
            Platform::Web => (Limit::per_second(1000), Limit::per_second(1000)),
        }
    }

    pub fn parse(name: &str) -> Option<Platform> {
        [Platform::Web, Platform::Discord, Platform::Slack, Platform::Telegram].into_iter().find(|p| p.name() == name)
    }
}

/// The HTTP answer the gateway gives the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Json,
}

impl Answer {
    pub fn json(status: u16, body: Json) -> Answer {
        Answer { status, body }
    }
}

/// A message or button press, normalized.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    /// The platform's own id for it, prefixed with platform and bot: the dedupe key and the
    /// event id (reply ids derive from it).
    pub id: String,
    pub conversation: String,
    pub user_id: String,
    pub user_name: String,
    /// The user's language as the platform reports it (`en`, `pt-BR`), or empty.
    pub user_language: String,
    pub input: Input,
    /// Where replies go, in the platform module's own format.
    pub reply_to: String,
}

/// What a verified webhook request is.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    /// Something for a bot: publish it, then answer.
    Event { incoming: Incoming, answer: Answer },
    /// The platform checking the endpoint (Discord's PING, Slack's url_verification).
    Answer(Answer),
    /// Valid, but nothing a bot acts on (edits, the bot's own messages): acknowledge it.
    Ignore { reason: &'static str, answer: Answer },
}

/// A message to deliver through a platform's API.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub reply_to: String,
    pub text: String,
    pub buttons: Vec<Button>,
    /// The first message answering its event (Telegram answers the button press with it;
    /// Discord edits the deferred response with it).
    pub first: bool,
}

/// One HTTP request to a platform's API.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Json,
}

impl Call {
    fn post(url: String, body: Json) -> Call {
        Call { method: "POST", url, headers: Vec::new(), body }
    }
}

/// What a platform's answer to a [`Call`] means.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Sent,
    /// 429: wait this long (the platform's own figure), then send again.
    RateLimited(Duration),
    /// A server error or an unreachable server: send again after a back-off.
    Retry(String),
    /// An error that sending again cannot fix (bad token, unknown chat).
    Failed(String),
}

/// A reply's address, as its platform module wrote it into the event.
fn address(reply: &Reply) -> Result<Json, String> {
    serde_json::from_str(&reply.reply_to).map_err(|_| "the reply address is unreadable".to_string())
}

/// A reply's text in parts of at most `max` characters: (index, text, whether this part
/// carries the buttons, which go on the last one).
fn parts(reply: &Reply, max: usize) -> impl Iterator<Item = (usize, String, bool)> + '_ {
    let parts = split(&reply.text, max);
    let last = parts.len() - 1;
    parts.into_iter().enumerate().map(move |(i, p)| (i, p, i == last && !reply.buttons.is_empty()))
}

fn json_str(v: &Json, key: &str) -> Option<String> {
    v.get(key).and_then(Json::as_str).map(str::to_string)
}

/// Splits `text` into parts of at most `max` characters, preferring paragraph breaks, then
/// line breaks, then spaces; a single word longer than `max` is cut.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let end = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i > 0).map(|i| (i, sep.len())))
            .unwrap_or((end, 0));
        parts.push(rest[..cut.0].trim_end().to_string());
        rest = rest[cut.0 + cut.1..].trim_start_matches([' ', '\n']);
    }
    parts.push(rest.to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_text_splits_at_paragraphs_then_lines_then_words() {
        let text = format!("{}\n\n{}", "a".repeat(8), "b".repeat(8));
        assert_eq!(split(&text, 12), ["aaaaaaaa", "bbbbbbbb"]);
        assert_eq!(split("one two three", 8), ["one two", "three"]);
        assert_eq!(split("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(split("short", 10), ["short"]);
        assert_eq!(split("ééééé", 2), ["éé", "éé", "é"]);
    }

    proptest! {
        #[test]
        fn parts_fit_and_keep_every_word(words in prop::collection::vec("[a-zé]{1,12}", 0..60), max in 12usize..40) {
            let text = words.join(" ");
            let parts = split(&text, max);
            for p in &parts {
                prop_assert!(p.chars().count() <= max, "{p:?} over {max}");
            }
            let rejoined: Vec<&str> = parts.iter().flat_map(|p| p.split(' ')).filter(|w| !w.is_empty()).collect();
            prop_assert_eq!(rejoined, words.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Payloads shaped like each platform's, with fields dropped, retyped or garbled.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let seeds = [
            r#"{"update_id":1,"message":{"message_id":1,"from":{"id":4,"first_name":"A"},"chat":{"id":4,"type":"private"},"text":"hi"}}"#,
            r#"{"update_id":2,"callback_query":{"id":"q","from":{"id":4},"message":{"chat":{"id":4}},"data":"x"}}"#,
            r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"D1","user":"U1","text":"<@U2> hi"}}"#,
            r#"{"type":"url_verification","challenge":"c"}"#,
            r#"payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22value%22%3A%22v%22%7D%5D%7D"#,
            r#"{"type":2,"id":"9","application_id":"A","token":"T","channel_id":"C","user":{"id":"U"},"data":{"name":"o","options":[{"value":1}]}}"#,
            r#"{"type":3,"id":"9","application_id":"A","token":"T","channel":{"id":"C"},"member":{"user":{"id":"U"}},"data":{"custom_id":"x"}}"#,
        ];
        (prop::sample::select(seeds.to_vec()), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6))
            .prop_map(|(seed, edits)| {
                let mut bytes = seed.as_bytes().to_vec();
                for (at, b) in edits {
                    let i = at.index(bytes.len());
                    match b % 3 {
                        0 => bytes[i] = b,
                        1 => {
                            bytes.remove(i);
                        }
                        _ => bytes.insert(i, b),
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn no_payload_makes_a_parser_panic(body in payload()) {
            let _ = telegram::inbound("b", &body);
            let _ = slack::inbound("b", &body);
            let _ = discord::inbound("b", &body, 0);
        }

        #[test]
        fn random_bytes_are_errors_or_answers(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = telegram::inbound("b", &body);
            let _ = slack::inbound("b", &body);
            let _ = discord::inbound("b", &body, 0);
        }

        #[test]
        fn replies_to_any_address_build_or_fail_cleanly(to in ".{0,40}", text in ".{0,50}") {
            let reply = Reply { reply_to: to, text, buttons: vec![], first: true };
            let _ = telegram::calls("b", "t", &reply);
            let _ = slack::calls("b", "t", &reply);
            let _ = discord::calls("b", "t", &reply, 0);
        }
    }
}
