//! The one internal event type every channel's input becomes, and its versioned encoding
//! (what the bus stores). Decoding never panics and refuses what it does not understand.

use botc_runtime::codec::{DecodeError, Reader, put_bytes, put_var};
use botc_runtime::vm::Input;

/// Version of the encoding below; bump it with any layout change and keep reading the old.
/// Version 2 added `reply_to`, version 3 `user_language`.
pub const EVENT_VERSION: u8 = 3;

/// A conversation's key: `bot/channel/conversation`. The channel is part of it because
/// conversation ids are only unique within their channel: a Telegram chat id and a web
/// conversation id may be the same string, and must never reach each other's session.
pub fn key(bot: &str, channel: &str, conversation: &str) -> String {
    format!("{bot}/{channel}/{conversation}")
}

/// A normalized inbound event: what happened, to which conversation of which bot.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique per event; replies derive their ids from it.
    pub id: String,
    /// The channel it came from: `web`, `discord`, `slack` or `telegram`. Events botc makes
    /// itself (timers, http responses) carry their conversation's.
    pub platform: String,
    pub bot: String,
    pub conversation: String,
    pub user_id: String,
    pub user_name: String,
    /// The user's language as the channel reported it (`en`, `pt-BR`), or empty.
    pub user_language: String,
    pub kind: Input,
    /// Unix seconds.
    pub received_at: u64,
    /// Where the platform wants replies sent (chat, channel, interaction token), as the
    /// platform module wrote it; empty for the web channel.
    pub reply_to: String,
}

impl Event {
    /// The key that orders events: one conversation of one bot on one channel.
    pub fn key(&self) -> String {
        key(&self.bot, &self.platform, &self.conversation)
    }

    /// A placeholder for a bus event that could not be decoded: it belongs to no bot, so the
    /// worker passes over it (and its partition's position moves on).
    pub fn unreadable(offset: u64) -> Event {
        Event {
            id: format!("unreadable:{offset}"),
            platform: String::new(),
            bot: String::new(),
            conversation: String::new(),
            user_id: String::new(),
            user_name: String::new(),
            user_language: String::new(),
            kind: Input::HandBack,
            received_at: 0,
            reply_to: String::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![EVENT_VERSION];
        for s in [&self.id, &self.platform, &self.bot, &self.conversation, &self.user_id, &self.user_name] {
            put_bytes(&mut out, s.as_bytes());
        }
        put_var(&mut out, self.received_at);
        put_bytes(&mut out, self.reply_to.as_bytes());
        put_bytes(&mut out, self.user_language.as_bytes());
        match &self.kind {
            Input::Text(t) => {
                out.push(0);
                put_bytes(&mut out, t.as_bytes());
            }
            Input::Button(b) => {
                out.push(1);
                put_bytes(&mut out, b.as_bytes());
            }
            Input::Timer { timer } => {
                out.push(2);
                put_var(&mut out, u64::from(*timer));
            }
            Input::Http { status, body } => {
                out.push(3);
                put_var(&mut out, u64::from(*status));
                put_bytes(&mut out, body.to_string().as_bytes());
            }
            Input::HandBack => out.push(4),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u8()?;
        if !(1..=EVENT_VERSION).contains(&v) {
            return Err(DecodeError::Version(v));
        }
        let id = r.string()?;
        let platform = r.string()?;
        let bot = r.string()?;
        let conversation = r.string()?;
        let user_id = r.string()?;
        let user_name = r.string()?;
        let received_at = r.var()?;
        let reply_to = if v >= 2 { r.string()? } else { String::new() };
        let user_language = if v >= 3 { r.string()? } else { String::new() };
        let kind = match r.u8()? {
            0 => Input::Text(r.string()?),
            1 => Input::Button(r.string()?),
            2 => Input::Timer { timer: u32::try_from(r.var()?).map_err(|_| DecodeError::Malformed("timer number"))? },
            3 => {
                let status = u16::try_from(r.var()?).map_err(|_| DecodeError::Malformed("http status"))?;
                let body = serde_json::from_slice(r.bytes()?).map_err(|_| DecodeError::Malformed("http body"))?;
                Input::Http { status, body }
            }
            4 => Input::HandBack,
            _ => return Err(DecodeError::Malformed("unknown input kind")),
        };
        if !r.done() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok(Event { id, platform, bot, conversation, user_id, user_name, user_language, kind, received_at, reply_to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            ".{0,20}".prop_map(Input::Text),
            ".{0,20}".prop_map(Input::Button),
            any::<u32>().prop_map(|timer| Input::Timer { timer }),
            (any::<u16>(), ".{0,20}")
                .prop_map(|(status, s)| Input::Http { status, body: serde_json::json!({ "s": s, "n": 1 }) }),
            Just(Input::HandBack),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}", input(), any::<u64>(), (".{0,12}", "[a-z-]{0,5}"))
            .prop_map(|(id, bot, conversation, user_id, user_name, kind, received_at, (reply_to, user_language))| {
                Event {
                    id,
                    platform: "web".into(),
                    bot,
                    conversation,
                    user_id,
                    user_name,
                    user_language,
                    kind,
                    received_at,
                    reply_to,
                }
            })
    }

    proptest! {
        #[test]
        fn every_event_round_trips(e in event()) {
            prop_assert_eq!(Event::decode(&e.encode()), Ok(e));
        }

        #[test]
        fn truncated_or_damaged_bytes_are_refused_not_misread(e in event(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let bytes = e.encode();
            let n = cut.index(bytes.len());
            // Every proper prefix is refused.
            prop_assert!(Event::decode(&bytes[..n]).is_err());
            // A damaged byte either is refused or decodes to some event; it never panics.
            let mut damaged = bytes.clone();
            damaged[n] ^= flip;
            let _ = Event::decode(&damaged);
        }
    }

    #[test]
    fn version_1_events_still_decode() {
        // Written by the previous build: no reply_to.
        let mut v1 = vec![1u8];
        for s in ["e1", "web", "shop", "c1", "web:c1", "Ada"] {
            put_bytes(&mut v1, s.as_bytes());
        }
        put_var(&mut v1, 7);
        v1.push(0);
        put_bytes(&mut v1, b"hi");
        let e = Event::decode(&v1).expect("decodes");
        assert_eq!((e.id.as_str(), e.kind, e.reply_to.as_str()), ("e1", Input::Text("hi".into()), ""));
    }

    #[test]
    fn an_unknown_version_is_named() {
        assert_eq!(Event::decode(&[9]), Err(DecodeError::Version(9)));
    }
}
