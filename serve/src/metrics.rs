//! Counters for `/metrics`, in Prometheus' text format (0.0.4).
//!
//! Kept with `prometheus-client`, the Prometheus project's own Rust client, rather than by
//! hand: it writes the exposition format (names, `# HELP`/`# TYPE`, label escaping,
//! histogram buckets) the way Prometheus parses it, and every role process of the
//! distributed column exposes the same families through it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the step latency histogram, in seconds.
const BUCKETS: [f64; 9] = [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnPlatform {
    platform: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OfRole {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OfBot {
    bot: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AtNode {
    bot: String,
    node: String,
}

/// Counters kept per platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Platformed {
    /// Webhooks that were redeliveries of an event already taken.
    Duplicates,
    /// Replies the platform accepted.
    Delivered,
    /// Replies the platform refused for good (after which botc gives up on them).
    Failed,
    /// 429 answers.
    RateLimited,
    /// Server errors and unreachable servers, retried with back-off.
    Retried,
}

/// A gauge computed when `/metrics` is read (from the ports), by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measured {
    BusDepth,
    TimersPending,
    Sessions,
    RepliesWaiting,
}

pub struct Metrics {
    registry: Registry,
    pub received: Counter,
    pub accepted: Counter,
    rejected: Family<Reason, Counter>,
    pub steps: Counter,
    pub step_errors: Counter,
    pub replies: Counter,
    /// Events delivered again (a replay) and skipped because their session had them.
    pub replays_skipped: Counter,
    /// Timers that fell due and went onto the bus.
    pub timers_fired: Counter,
    /// Idle conversations forgotten.
    pub forgotten: Counter,
    /// Unreadable sessions set aside (their conversations started over).
    pub quarantined: Counter,
    restarts: Family<OfRole, Counter>,
    step_seconds: Histogram,
    visits: Family<AtNode, Counter>,
    platform: [Family<OnPlatform, Counter>; 5],
    gauges: [Gauge; 4],
    /// Flow versions loaded while running (deploys and rollbacks followed).
    pub flow_reloads: Counter,
    flow_version: Family<OfBot, Gauge>,
    /// Web-chat long-polls held open now.
    pub long_polls: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let received = counter(&mut r, "botc_events_received", "Events that reached the gateway");
        let accepted = counter(&mut r, "botc_events_accepted", "Events published to the bus and acknowledged");
        let rejected = Family::<Reason, Counter>::default();
        r.register("botc_events_rejected", "Events refused, by reason", rejected.clone());
        let steps = counter(&mut r, "botc_steps", "Events applied by the VM");
        let step_errors = counter(&mut r, "botc_step_errors", "Steps that trapped or hit a VM bug");
        let replies = counter(&mut r, "botc_replies_sent", "Messages sent to users");
        let timers_fired = counter(&mut r, "botc_timers_fired", "Timers that fell due and went onto the bus");
        let forgotten =
            counter(&mut r, "botc_conversations_forgotten", "Idle conversations forgotten (their history stays)");
        let replays_skipped = counter(
            &mut r,
            "botc_replays_skipped",
            "Events delivered again and skipped because their session had applied them",
        );
        let quarantined = counter(
            &mut r,
            "botc_sessions_quarantined",
            "Unreadable sessions set aside; their conversations started over",
        );
        let restarts = Family::<OfRole, Counter>::default();
        r.register("botc_role_restarts", "Roles restarted after a panic or failure", restarts.clone());
        let step_seconds = Histogram::new(BUCKETS);
        r.register("botc_step_seconds", "Time the VM took per event", step_seconds.clone());
        let platform: [Family<OnPlatform, Counter>; 5] = Default::default();
        for (what, family) in [
            ("botc_webhook_duplicates", "Webhook deliveries of events already taken"),
            ("botc_replies_delivered", "Replies a platform accepted"),
            ("botc_replies_failed", "Replies a platform refused for good"),
            ("botc_platform_rate_limited", "429 answers from platforms"),
            ("botc_replies_retried", "Sends retried after a server error"),
        ]
        .into_iter()
        .zip(&platform)
        {
            r.register(what.0, what.1, family.clone());
        }
        let gauges: [Gauge; 4] = Default::default();
        for ((name, help), g) in [
            ("botc_bus_depth", "Events waiting on the bus"),
            ("botc_timers_pending", "Timers scheduled and not yet due"),
            ("botc_sessions", "Conversations with a stored session"),
            ("botc_replies_waiting", "Platform replies waiting for delivery"),
        ]
        .into_iter()
        .zip(&gauges)
        {
            r.register(name, help, g.clone());
        }
        let visits = Family::<AtNode, Counter>::default();
        r.register("botc_node_visits", "Times a node was entered", visits.clone());
        let flow_reloads = counter(
            &mut r,
            "botc_flow_reloads",
            "Flow versions loaded while running (deploys and rollbacks of the followed environment)",
        );
        let flow_version = Family::<OfBot, Gauge>::default();
        r.register(
            "botc_flow_version",
            "The registry's version number of the flow each bot serves",
            flow_version.clone(),
        );
        let long_polls = Gauge::default();
        r.register("botc_web_long_polls", "Web-chat long-polls (`wait`) held open now", long_polls.clone());
        Metrics {
            long_polls,
            registry: r,
            received,
            accepted,
            rejected,
            steps,
            step_errors,
            replies,
            replays_skipped,
            timers_fired,
            forgotten,
            quarantined,
            restarts,
            step_seconds,
            visits,
            platform,
            gauges,
            flow_reloads,
            flow_version,
        }
    }
}

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&Reason { reason }).inc();
    }

    pub fn count(&self, what: Platformed, platform: &'static str) {
        self.platform[what as usize].get_or_create(&OnPlatform { platform }).inc();
    }

    pub fn step_took(&self, d: std::time::Duration) {
        self.step_seconds.observe(d.as_secs_f64());
    }

    pub fn restarted(&self, role: &str) {
        self.restarts.get_or_create(&OfRole { role: role.to_string() }).inc();
    }

    pub fn visited(&self, bot: &str, nodes: impl Iterator<Item = String>) {
        for node in nodes {
            self.visits.get_or_create(&AtNode { bot: bot.to_string(), node }).inc();
        }
    }

    /// How many times this process saw `node` of `bot` entered.
    pub fn visits_of(&self, bot: &str, node: &str) -> u64 {
        self.visits.get(&AtNode { bot: bot.to_string(), node: node.to_string() }).map_or(0, |c| c.get())
    }

    /// The text exposition format, with `measured` gauges as the caller just read them, and
    /// each bot's flow version number.
    pub fn render(&self, measured: &[(Measured, u64)], versions: &[(String, u64)]) -> String {
        for &(which, v) in measured {
            self.gauges[which as usize].set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        for (bot, n) in versions {
            self.flow_version.get_or_create(&OfBot { bot: bot.clone() }).set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_types_labels_escaped_and_cumulative_buckets() {
        let m = Metrics::default();
        m.received.inc();
        m.reject("bad_signature");
        m.count(Platformed::RateLimited, "telegram");
        m.restarted("dispatcher \"shop\"\nx");
        m.step_took(std::time::Duration::from_micros(70));
        m.step_took(std::time::Duration::from_millis(2));
        m.flow_reloads.inc();
        let text = m.render(&[(Measured::BusDepth, 7)], &[("shop".into(), 3)]);
        for line in [
            "# HELP botc_events_received_total Events that reached the gateway.",
            "# TYPE botc_events_received_total counter",
            "botc_events_received_total 1",
            "botc_events_rejected_total{reason=\"bad_signature\"} 1",
            "botc_platform_rate_limited_total{platform=\"telegram\"} 1",
            "botc_role_restarts_total{role=\"dispatcher \\\"shop\\\"\\nx\"} 1",
            "botc_step_seconds_bucket{le=\"0.0001\"} 1",
            "botc_step_seconds_bucket{le=\"0.005\"} 2",
            "botc_step_seconds_count 2",
            "# TYPE botc_bus_depth gauge",
            "botc_bus_depth 7",
            "botc_flow_version{bot=\"shop\"} 3",
            "botc_flow_reloads_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
    }
}
