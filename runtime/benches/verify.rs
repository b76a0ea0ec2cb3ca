//! What verifying a webhook costs, per request: Telegram's secret token, Slack's HMAC and
//! Discord's Ed25519 signature, on realistically sized bodies (BENCHMARKS.md).

use botc_runtime::platforms::verify::{self, DiscordKey, slack_sign};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use std::hint::black_box;

fn verification(c: &mut Criterion) {
    let body = format!(
        r#"{{"type":"event_callback","event_id":"Ev08MFMKH6","event":{{"type":"message","channel":"D1","user":"U1","text":"{}"}}}}"#,
        "hello ".repeat(40)
    );
    let body = body.as_bytes();
    let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
    let ts = "1531420618";
    let sig = slack_sign(secret, ts, body);
    c.bench_function("verify_slack_hmac", |b| {
        b.iter(|| {
            verify::slack(black_box(secret), Some(ts.as_bytes()), Some(sig.as_bytes()), black_box(body), 1_531_420_620)
        })
    });
    let token = b"Webhook_Secret_Value-123";
    c.bench_function("verify_telegram_token", |b| {
        b.iter(|| verify::telegram(black_box(token), Some(black_box(token))))
    });
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public: String = key.verifying_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let parsed = DiscordKey::parse(&public).expect("key");
    let signature: String =
        key.sign(&[ts.as_bytes(), body].concat()).to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    c.bench_function("verify_discord_ed25519", |b| {
        b.iter(|| verify::discord(&parsed, Some(ts.as_bytes()), Some(signature.as_bytes()), black_box(body)))
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
