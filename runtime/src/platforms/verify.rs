//! Proving a webhook came from its platform: Discord's Ed25519 signatures, Slack's v0
//! HMAC-SHA256 signatures, Telegram's secret-token header. Pure functions of the request's
//! bytes, the bot's secret and the time (passed in). Every comparison of secret-derived bytes
//! is constant-time. The reasons say what was wrong with the request, never what the secret is.

use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a request was refused (logged and counted; the platform only sees 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    MissingHeader(&'static str),
    /// A header or key that is not the right hex of the right length.
    Malformed(&'static str),
    BadSignature,
    /// Slack: the timestamp is more than five minutes from now, either way.
    Stale,
    /// Slack: a signature version other than `v0`.
    UnknownVersion,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::MissingHeader(h) => write!(f, "the {h} header is missing"),
            Reject::Malformed(what) => write!(f, "{what} is malformed"),
            Reject::BadSignature => write!(f, "the signature does not match"),
            Reject::Stale => write!(f, "the timestamp is more than five minutes from now"),
            Reject::UnknownVersion => write!(f, "the signature version is not v0"),
        }
    }
}

/// Decodes exactly `N` bytes of hex.
pub fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let t = text.as_bytes();
    if t.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in t.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A Discord application's public key, parsed once (64 hex digits).
#[derive(Clone, Debug)]
pub struct DiscordKey(VerifyingKey);

impl DiscordKey {
    pub fn parse(hex_key: &str) -> Result<DiscordKey, String> {
        let bytes = hex::<32>(hex_key.trim())
            .ok_or("a Discord public key is 64 hexadecimal digits (the application's General Information page)")?;
        VerifyingKey::from_bytes(&bytes).map(DiscordKey).map_err(|_| "this is not a valid Ed25519 public key".into())
    }
}

/// Discord: Ed25519 over the timestamp header's bytes followed by the raw body.
pub fn discord(
    key: &DiscordKey,
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
) -> Result<(), Reject> {
    let timestamp = timestamp.ok_or(Reject::MissingHeader("X-Signature-Timestamp"))?;
    let signature = signature.ok_or(Reject::MissingHeader("X-Signature-Ed25519"))?;
    let signature =
        std::str::from_utf8(signature).ok().and_then(hex::<64>).ok_or(Reject::Malformed("X-Signature-Ed25519"))?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp);
    message.extend_from_slice(body);
    key.0.verify_strict(&message, &Signature::from_bytes(&signature)).map_err(|_| Reject::BadSignature)
}

/// Slack's replay window, in seconds, applied in both directions.
pub const SLACK_WINDOW: u64 = 5 * 60;

/// Slack: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret; the
/// timestamp must be within five minutes of `now` (unix seconds).
pub fn slack(
    secret: &[u8],
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
    now: u64,
) -> Result<(), Reject> {
    let timestamp = timestamp.ok_or(Reject::MissingHeader("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(Reject::MissingHeader("X-Slack-Signature"))?;
    let ts: u64 = std::str::from_utf8(timestamp)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or(Reject::Malformed("X-Slack-Request-Timestamp"))?;
    if ts.abs_diff(now) > SLACK_WINDOW {
        return Err(Reject::Stale);
    }
    let Some(hex_sig) = signature.strip_prefix(b"v0=") else {
        return Err(Reject::UnknownVersion);
    };
    let expected =
        std::str::from_utf8(hex_sig).ok().and_then(hex::<32>).ok_or(Reject::Malformed("X-Slack-Signature"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Reject::BadSignature)?;
    mac.update(b"v0:");
    mac.update(timestamp);
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| Reject::BadSignature)
}

/// The Slack signature of a request: for tests and for the fake platform in tests.
pub fn slack_sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("v0={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Telegram: the `X-Telegram-Bot-Api-Secret-Token` header equals the configured token.
pub fn telegram(expected: &[u8], got: Option<&[u8]>) -> Result<(), Reject> {
    let got = got.ok_or(Reject::MissingHeader("X-Telegram-Bot-Api-Secret-Token"))?;
    if same_secret(expected, got) { Ok(()) } else { Err(Reject::BadSignature) }
}

/// Whether a presented token equals the configured one. Lengths are compared first (the
/// length of a token is not secret in practice); the bytes in constant time.
pub fn same_secret(expected: &[u8], got: &[u8]) -> bool {
    got.len() == expected.len() && bool::from(got.ct_eq(expected))
}

/// The token of web conversation `conversation` of `bot`: HMAC-SHA256 under the server's
/// conversation key, as 64 hex digits. The server issues a conversation with its token and
/// keeps nothing: whoever presents the token may read and write that conversation, and an id
/// without it reveals nothing, not even whether the conversation exists.
pub fn conversation_token(key: &[u8; 32], bot: &str, conversation: &str) -> String {
    let bytes = conversation_mac(key, bot, conversation).finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `token` is conversation `conversation`'s (compared in constant time).
pub fn conversation_token_valid(key: &[u8; 32], bot: &str, conversation: &str, token: &str) -> bool {
    match hex::<32>(token) {
        Some(bytes) => conversation_mac(key, bot, conversation).verify_slice(&bytes).is_ok(),
        None => false,
    }
}

fn conversation_mac(key: &[u8; 32], bot: &str, conversation: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    // Bot ids cannot hold a NUL, so no two (bot, conversation) pairs hash the same bytes.
    mac.update(b"botc web conversation\0");
    mac.update(bot.as_bytes());
    mac.update(b"\0");
    mac.update(conversation.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_token_opens_only_its_own_conversation() {
        let key = [7u8; 32];
        let token = conversation_token(&key, "shop", "c1");
        assert_eq!(token.len(), 64);
        assert!(conversation_token_valid(&key, "shop", "c1", &token));
        assert!(!conversation_token_valid(&key, "shop", "c2", &token), "another conversation");
        assert!(!conversation_token_valid(&key, "shop2", "c1", &token), "another bot's conversation");
        assert!(!conversation_token_valid(&[8u8; 32], "shop", "c1", &token), "another server's key");
        assert!(!conversation_token_valid(&key, "shop", "c1", &token[..63]), "a shortened token");
        assert!(!conversation_token_valid(&key, "shop", "c1", &format!("g{}", &token[1..])), "not hex");
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(conversation_token(&key, "ab", "c"), conversation_token(&key, "a", "bc"));
    }

    // PLATFORMS.md §1, vector A: a real PING.
    const D_KEY: &str = "c5568d0facd66bddee281dcb9c8ac02e169c5c20741b215b2539a96bb183c5d6";
    const D_TS: &str = "1657322078";
    const D_BODY: &str = r#"{"application_id":"827290144020496384","id":"995105663481028770","token":"aW50ZXJhY3Rpb246OTk1MTA1NjYzNDgxMDI4NzcwOmlReEtWOXNxMTJWYXF4UlRkc2RyVEp0MDdDMlVyem1na0FTT21xNTZQNHR0MUlORDU1bmNCUTZZdTI5akJkb3FycjBuUDltNVp3VVVJbnA0UUkzMG13cVBGWE5qZFQyb1dkZEpqVVFEdmZEcGE2UHV5dFAyTE5rS2c2a2lZNDlx","type":1,"user":{"avatar":"27aeb42cc902f7d8712aa64ff15bfb7d","avatar_decoration":null,"discriminator":"6969","id":"170531778354741248","public_flags":576,"username":"miles"},"version":1}"#;
    const D_SIG: &str = "28b4ab5f09cce30c7f7f4ab4b47c311f0ce83dd8fec06d34e402c44d64223be5016f95339e64bdabcbd395e9147afe3f8cd024868330ab41014ae51b5573a009";

    // PLATFORMS.md §2: Slack's own example.
    const S_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const S_TS: &str = "1531420618";
    const S_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const S_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const S_NOW: u64 = 1_531_420_618 + 10;

    fn d(ts: &[u8], sig: &[u8], body: &[u8]) -> Result<(), Reject> {
        discord(&DiscordKey::parse(D_KEY).expect("key"), Some(ts), Some(sig), body)
    }

    fn s(ts: &[u8], sig: &[u8], body: &[u8], now: u64) -> Result<(), Reject> {
        slack(S_SECRET.as_bytes(), Some(ts), Some(sig), body, now)
    }

    /// Every byte position of `bytes` with one bit flipped, and with the byte replaced.
    fn tampered(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
        (0..bytes.len()).flat_map(move |i| {
            [0x01u8, 0x80, 0x20].into_iter().map(move |flip| {
                let mut v = bytes.to_vec();
                v[i] ^= flip;
                v
            })
        })
    }

    #[test]
    fn discord_accepts_its_own_ping() {
        assert_eq!(d(D_TS.as_bytes(), D_SIG.as_bytes(), D_BODY.as_bytes()), Ok(()));
        // Upper-case hex is the same signature.
        assert_eq!(d(D_TS.as_bytes(), D_SIG.to_uppercase().as_bytes(), D_BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn discord_refuses_every_tampered_byte_of_body_timestamp_and_signature() {
        assert_eq!(d(b"1657322079", D_SIG.as_bytes(), D_BODY.as_bytes()), Err(Reject::BadSignature));
        for body in tampered(D_BODY.as_bytes()) {
            assert!(d(D_TS.as_bytes(), D_SIG.as_bytes(), &body).is_err(), "{}", String::from_utf8_lossy(&body));
        }
        for ts in tampered(D_TS.as_bytes()) {
            assert!(d(&ts, D_SIG.as_bytes(), D_BODY.as_bytes()).is_err());
        }
        for sig in tampered(D_SIG.as_bytes()) {
            // A flip that only changes a hex digit's case is the same signature.
            if sig.eq_ignore_ascii_case(D_SIG.as_bytes()) {
                continue;
            }
            assert!(d(D_TS.as_bytes(), &sig, D_BODY.as_bytes()).is_err(), "{}", String::from_utf8_lossy(&sig));
        }
        // Re-serialized JSON is not the signed body.
        let value = serde_json::from_str::<serde_json::Value>(D_BODY).expect("json");
        let reserialized = serde_json::to_string_pretty(&value).expect("json");
        assert_ne!(reserialized, D_BODY);
        assert!(d(D_TS.as_bytes(), D_SIG.as_bytes(), reserialized.as_bytes()).is_err());
    }

    #[test]
    fn discord_names_missing_and_malformed_headers() {
        let key = DiscordKey::parse(D_KEY).expect("key");
        assert_eq!(
            discord(&key, None, Some(D_SIG.as_bytes()), b"{}"),
            Err(Reject::MissingHeader("X-Signature-Timestamp"))
        );
        assert_eq!(discord(&key, Some(b"1"), None, b"{}"), Err(Reject::MissingHeader("X-Signature-Ed25519")));
        assert_eq!(d(b"1", &D_SIG.as_bytes()[2..], b"{}"), Err(Reject::Malformed("X-Signature-Ed25519")));
        assert!(DiscordKey::parse("abc").is_err());
        assert!(DiscordKey::parse(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn slack_accepts_its_documented_example() {
        assert_eq!(s(S_TS.as_bytes(), S_SIG.as_bytes(), S_BODY.as_bytes(), S_NOW), Ok(()));
        assert_eq!(slack_sign(S_SECRET.as_bytes(), S_TS, S_BODY.as_bytes()), S_SIG);
    }

    #[test]
    fn slack_refuses_every_tampered_byte_of_body_timestamp_and_signature() {
        for body in tampered(S_BODY.as_bytes()) {
            assert!(s(S_TS.as_bytes(), S_SIG.as_bytes(), &body, S_NOW).is_err());
        }
        for ts in tampered(S_TS.as_bytes()) {
            assert!(s(&ts, S_SIG.as_bytes(), S_BODY.as_bytes(), S_NOW).is_err(), "{}", String::from_utf8_lossy(&ts));
        }
        for sig in tampered(S_SIG.as_bytes()) {
            if sig.eq_ignore_ascii_case(S_SIG.as_bytes()) && sig.starts_with(b"v0=") {
                continue;
            }
            assert!(s(S_TS.as_bytes(), &sig, S_BODY.as_bytes(), S_NOW).is_err(), "{}", String::from_utf8_lossy(&sig));
        }
        let wrong_secret =
            slack(b"another secret", Some(S_TS.as_bytes()), Some(S_SIG.as_bytes()), S_BODY.as_bytes(), S_NOW);
        assert_eq!(wrong_secret, Err(Reject::BadSignature));
    }

    #[test]
    fn slack_refuses_timestamps_more_than_five_minutes_away_either_way() {
        let ts: u64 = S_TS.parse().expect("number");
        for (now, ok) in [(ts, true), (ts + 300, true), (ts - 300, true), (ts + 301, false), (ts - 301, false)] {
            let r = s(S_TS.as_bytes(), S_SIG.as_bytes(), S_BODY.as_bytes(), now);
            assert_eq!(r.is_ok(), ok, "now = ts {:+}", now as i64 - ts as i64);
            if !ok {
                assert_eq!(r, Err(Reject::Stale));
            }
        }
        assert_eq!(
            s(b"", S_SIG.as_bytes(), S_BODY.as_bytes(), S_NOW),
            Err(Reject::Malformed("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            s(b"-5", S_SIG.as_bytes(), S_BODY.as_bytes(), S_NOW),
            Err(Reject::Malformed("X-Slack-Request-Timestamp"))
        );
        let v1 = S_SIG.replacen("v0=", "v1=", 1);
        assert_eq!(s(S_TS.as_bytes(), v1.as_bytes(), S_BODY.as_bytes(), S_NOW), Err(Reject::UnknownVersion));
    }

    #[test]
    fn telegram_compares_the_whole_token() {
        let t = b"s3cret_Token-1";
        assert_eq!(telegram(t, Some(t)), Ok(()));
        assert_eq!(telegram(t, None), Err(Reject::MissingHeader("X-Telegram-Bot-Api-Secret-Token")));
        for bad in tampered(t) {
            assert_eq!(telegram(t, Some(&bad)), Err(Reject::BadSignature));
        }
        assert_eq!(telegram(t, Some(&t[..t.len() - 1])), Err(Reject::BadSignature));
        assert_eq!(telegram(t, Some(b"s3cret_Token-1x")), Err(Reject::BadSignature));
    }
}
