//! Counters for `/metrics`, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the step latency histogram, in seconds.
const BUCKETS: [f64; 9] = [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1];

#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    /// Rejected events by reason.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    pub steps: AtomicU64,
    pub step_errors: AtomicU64,
    pub replies: AtomicU64,
    /// Events delivered again (a replay) and skipped because their session had them.
    pub replays_skipped: AtomicU64,
    /// Timers that fell due and went onto the bus.
    pub timers_fired: AtomicU64,
    /// Idle conversations forgotten.
    pub forgotten: AtomicU64,
    /// Unreadable sessions set aside (their conversations started over).
    pub quarantined: AtomicU64,
    /// Role restarts after a panic or failure, by role.
    restarts: Mutex<BTreeMap<String, u64>>,
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
    /// Node visits by (bot, node name).
    visits: Mutex<BTreeMap<(String, String), u64>>,
    /// Platform traffic: (metric, platform) → count.
    platform: Mutex<BTreeMap<(Platformed, &'static str), u64>>,
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

impl Platformed {
    fn name(self) -> (&'static str, &'static str) {
        match self {
            Platformed::Duplicates => ("botc_webhook_duplicates_total", "Webhook deliveries of events already taken."),
            Platformed::Delivered => ("botc_replies_delivered_total", "Replies a platform accepted."),
            Platformed::Failed => ("botc_replies_failed_total", "Replies a platform refused for good."),
            Platformed::RateLimited => ("botc_platform_rate_limited_total", "429 answers from platforms."),
            Platformed::Retried => ("botc_replies_retried_total", "Sends retried after a server error."),
        }
    }
}

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        *self.rejected.lock().unwrap_or_else(|e| e.into_inner()).entry(reason).or_default() += 1;
    }

    pub fn count(&self, what: Platformed, platform: &'static str) {
        *self.platform.lock().unwrap_or_else(|e| e.into_inner()).entry((what, platform)).or_default() += 1;
    }

    pub fn step_took(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn restarted(&self, role: &str) {
        *self.restarts.lock().unwrap_or_else(|e| e.into_inner()).entry(role.to_string()).or_default() += 1;
    }

    pub fn visited(&self, bot: &str, nodes: impl Iterator<Item = String>) {
        let mut v = self.visits.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            *v.entry((bot.to_string(), n)).or_default() += 1;
        }
    }

    /// The text exposition format; `gauges` are current values computed by the caller.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut out,
            "botc_events_received_total",
            "Events that reached the gateway.",
            self.received.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "botc_events_accepted_total",
            "Events published to the bus and acknowledged.",
            self.accepted.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP botc_events_rejected_total Events refused, by reason.\n# TYPE botc_events_rejected_total counter"
        );
        for (reason, n) in self.rejected.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "botc_events_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        counter(&mut out, "botc_steps_total", "Events applied by the VM.", self.steps.load(Ordering::Relaxed));
        counter(
            &mut out,
            "botc_step_errors_total",
            "Steps that trapped or hit a VM bug.",
            self.step_errors.load(Ordering::Relaxed),
        );
        counter(&mut out, "botc_replies_sent_total", "Messages sent to users.", self.replies.load(Ordering::Relaxed));
        counter(
            &mut out,
            "botc_timers_fired_total",
            "Timers that fell due and went onto the bus.",
            self.timers_fired.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "botc_conversations_forgotten_total",
            "Idle conversations forgotten (their history stays).",
            self.forgotten.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "botc_replays_skipped_total",
            "Events delivered again and skipped because their session had applied them.",
            self.replays_skipped.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "botc_sessions_quarantined_total",
            "Unreadable sessions set aside; their conversations started over.",
            self.quarantined.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP botc_role_restarts_total Roles restarted after a panic or failure.\n# TYPE botc_role_restarts_total counter"
        );
        for (role, n) in self.restarts.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "botc_role_restarts_total{{role=\"{}\"}} {n}", escape(role));
        }
        let _ =
            writeln!(out, "# HELP botc_step_seconds Time the VM took per event.\n# TYPE botc_step_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "botc_step_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "botc_step_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "botc_step_seconds_sum {}", self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "botc_step_seconds_count {cumulative}");
        let platform = self.platform.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for ((what, p), n) in platform.iter() {
            let (name, help) = what.name();
            if last != Some(*what) {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = Some(*what);
            }
            let _ = writeln!(out, "{name}{{platform=\"{p}\"}} {n}");
        }
        drop(platform);
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP botc_node_visits_total Times a node was entered.\n# TYPE botc_node_visits_total counter"
        );
        for ((bot, node), n) in self.visits.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "botc_node_visits_total{{bot=\"{}\",node=\"{}\"}} {n}", escape(bot), escape(node));
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
