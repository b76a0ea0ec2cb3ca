//! Send budgets shared in Redis by several dispatcher processes (each test's limiters have
//! connections of their own, as separate processes would), on the machine's Redis and on a
//! Redis Cluster the tests start. Budgets here are per minute, so no budget refills while a
//! test runs and the counts are exact.

mod support;

use botc_dist::{Conn, Keys, Redis, RedisAddr, RedisLimiter};
use botc_runtime::platforms::limiter::{Check, Limit};
use botc_serve::ports::RateLimiter;
use std::time::Duration;

async fn limiter(addr: &RedisAddr, prefix: &str) -> RedisLimiter {
    let conn = Conn::connect(addr).await.expect("redis");
    RedisLimiter { redis: Redis::new(conn, Keys::new(prefix), 0, 0) }
}

fn per_minute(n: u32) -> Limit {
    Limit { rate: n, period: Duration::from_secs(60), burst: n }
}

fn checks(bot: Limit, conversation: &str, per_conversation: Limit) -> Vec<Check> {
    vec![
        Check { key: "telegram:bot".into(), limit: bot },
        Check { key: format!("telegram:bot/telegram/{conversation}"), limit: per_conversation },
    ]
}

async fn two_dispatchers_never_exceed_one_budget(addr: RedisAddr) {
    let prefix = format!("botc-test:{:016x}:", fastrand::u64(..));
    let (a, b) = (limiter(&addr, &prefix).await, limiter(&addr, &prefix).await);
    let mut passed = 0;
    for i in 0..30 {
        let l = if i % 2 == 0 { &a } else { &b };
        if l.acquire(&checks(per_minute(10), &format!("c{i}"), per_minute(10))).await.is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 10, "two dispatchers together sent more than the bot's budget");
    match a.acquire(&checks(per_minute(10), "late", per_minute(10))).await {
        Err(wait) => assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(6), "{wait:?}"),
        Ok(()) => panic!("over budget, yet passed"),
    }
}

async fn a_send_passes_every_check_or_is_charged_none(addr: RedisAddr) {
    let prefix = format!("botc-test:{:016x}:", fastrand::u64(..));
    let l = limiter(&addr, &prefix).await;
    let (bot, chat) = (per_minute(2), per_minute(1));
    assert!(l.acquire(&checks(bot, "a", chat)).await.is_ok());
    // Refused by the conversation's budget: the bot's is not charged for it.
    assert!(l.acquire(&checks(bot, "a", chat)).await.is_err());
    assert!(l.acquire(&checks(bot, "b", chat)).await.is_ok(), "the refused send took the bot's budget");
    assert!(l.acquire(&checks(bot, "c", chat)).await.is_err(), "the bot's budget of 2 was exceeded");
}

async fn a_platforms_429_holds_every_sender_back(addr: RedisAddr) {
    let prefix = format!("botc-test:{:016x}:", fastrand::u64(..));
    let (a, b) = (limiter(&addr, &prefix).await, limiter(&addr, &prefix).await);
    let fast = Limit::per_second(1000);
    let send = checks(fast, "x", fast);
    assert!(a.acquire(&send).await.is_ok());
    a.penalize(&send, Duration::from_secs(30)).await;
    match b.acquire(&send).await {
        Err(wait) => assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30), "{wait:?}"),
        Ok(()) => panic!("another dispatcher sent during the platform's Retry-After"),
    }
}

fn single() -> RedisAddr {
    RedisAddr::Single(std::env::var("BOTC_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()))
}

fn cluster() -> RedisAddr {
    RedisAddr::Cluster(support::cluster().nodes.clone())
}

#[tokio::test]
async fn single_two_dispatchers_never_exceed_one_budget() {
    two_dispatchers_never_exceed_one_budget(single()).await;
}
#[tokio::test]
async fn single_a_send_passes_every_check_or_is_charged_none() {
    a_send_passes_every_check_or_is_charged_none(single()).await;
}
#[tokio::test]
async fn single_a_platforms_429_holds_every_sender_back() {
    a_platforms_429_holds_every_sender_back(single()).await;
}
#[tokio::test]
async fn cluster_two_dispatchers_never_exceed_one_budget() {
    two_dispatchers_never_exceed_one_budget(cluster()).await;
}
#[tokio::test]
async fn cluster_a_send_passes_every_check_or_is_charged_none() {
    a_send_passes_every_check_or_is_charged_none(cluster()).await;
}
#[tokio::test]
async fn cluster_a_platforms_429_holds_every_sender_back() {
    a_platforms_429_holds_every_sender_back(cluster()).await;
}
