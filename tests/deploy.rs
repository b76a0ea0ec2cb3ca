//! The files under deploy/ refer to what botc has: every metric the Grafana dashboard and
//! the alert rules query is one botc registers (a renamed metric would otherwise leave an
//! empty panel and an alert that never fires). The manifests themselves are validated by
//! scripts/validate-deploy (Kubernetes schemas, strict).

use crate::root;

/// The `botc_…` names in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("botc_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_and_alerts_query_only_metrics_botc_exports() {
    let registered = metric_names(&std::fs::read_to_string(root().join("serve/src/metrics.rs")).expect("metrics.rs"));
    assert!(registered.contains("botc_bus_depth") && registered.len() > 15, "{registered:?}");
    for file in ["deploy/monitoring/grafana-dashboard.json", "deploy/monitoring/alerts.yaml"] {
        let text = std::fs::read_to_string(root().join(file)).expect("monitoring file");
        let used = metric_names(&text);
        assert!(used.len() >= 8, "{file} queries {used:?}");
        for name in used {
            // Counters are exposed with _total; histograms with _bucket, _sum and _count.
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            assert!(registered.contains(&family), "{file} queries {name}, which botc does not export");
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/monitoring/grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 10));
}

/// The flows the manifests ship compile cleanly.
#[test]
fn the_shipped_flows_check_clean() {
    let out = crate::botc(&["check", "--deny-warnings", "deploy/flows/bots"]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
}

/// The config the manifests ship reads and checks (doctor then fails only on what it cannot
/// reach here: the cluster's Kafka, Redis and Postgres).
#[cfg(feature = "distributed")]
#[test]
fn the_shipped_config_reads_and_checks() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["doctor", "--config", "deploy/base/botc.toml"])
        .current_dir(root())
        .env("BOTC_REDIS_URL", "redis://127.0.0.1:1")
        .env("BOTC_DATABASE_URL", "postgres://botc@127.0.0.1:1/botc")
        .output()
        .expect("botc doctor");
    let text = crate::stdout(&out);
    assert!(text.contains("ok    deploy/base/botc.toml reads and checks"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}
