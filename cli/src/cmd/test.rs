//! `botc test`: conversation tests, with JUnit XML and coverage.

use crate::flows::load_flow;
use crate::testing;
use crate::{EXIT_FINDINGS, fail};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TestFormat {
    Human,
    /// JUnit XML, for CI test reports
    Junit,
}

pub(crate) fn test_cmd(paths: &[PathBuf], format: TestFormat, show_coverage: bool) -> ExitCode {
    let files = match testing::find(paths) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read test paths: {e}")),
    };
    if files.is_empty() {
        return fail("no conversation tests (*.test.yaml) found");
    }
    let human = format == TestFormat::Human;
    let (mut passed, mut failed) = (0usize, 0usize);
    // JUnit XML by quick-junit, which also drops characters XML cannot hold (a failure
    // message may quote a bot's text, control characters and all).
    let mut junit = Report::new("botc test");
    // Coverage per flow file, merged across test files.
    let mut coverage: Vec<(PathBuf, botc_runtime::Loaded, testing::Coverage)> = Vec::new();
    for file in &files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read {shown}: {e}")),
        };
        let spec = match testing::parse(file, &text) {
            Ok(s) => s,
            Err(e) => {
                failed += 1;
                eprintln!("error: {shown}:{}: {}", e.line, e.message);
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("line {}: {}", e.line, e.message));
                let mut suite = TestSuite::new(shown.as_str());
                suite.add_test_case(TestCase::new("(test file)", status));
                junit.add_test_suite(suite);
                continue;
            }
        };
        let flow_key = spec.flow.clone();
        if !coverage.iter().any(|(p, ..)| *p == flow_key) {
            match load_flow(&spec.flow) {
                Ok(program) => coverage.push((flow_key.clone(), program, testing::Coverage::default())),
                Err(e) => {
                    failed += spec.tests.len().max(1);
                    eprintln!("error: {shown}: {e}");
                    continue;
                }
            }
        }
        let entry = coverage.iter_mut().find(|(p, ..)| *p == flow_key).expect("just inserted");
        if human {
            outln!("{shown} ({})", spec.flow.display());
        }
        let mut suite = TestSuite::new(shown.as_str());
        for test in &spec.tests {
            let outcome = testing::run(&entry.1, test, &mut entry.2);
            match &outcome.failure {
                None => {
                    passed += 1;
                    if human {
                        outln!("  ok    {} ({} steps)", outcome.name, outcome.steps);
                    }
                    let mut case = TestCase::new(outcome.name.as_str(), TestCaseStatus::success());
                    case.set_classname(shown.as_str());
                    suite.add_test_case(case);
                }
                Some(why) => {
                    failed += 1;
                    if human {
                        outln!("  FAIL  {}\n    {}", outcome.name, why.trim_end().replace('\n', "\n    "));
                    }
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(why.lines().next().unwrap_or("failed"));
                    status.set_description(why.as_str());
                    let mut case = TestCase::new(outcome.name.as_str(), status);
                    case.set_classname(shown.as_str());
                    suite.add_test_case(case);
                }
            }
        }
        junit.add_test_suite(suite);
    }
    if human {
        outln!("\ntest result: {passed} passed, {failed} failed");
    } else {
        match junit.to_string() {
            Ok(xml) => outln!("{xml}"),
            Err(e) => return fail(format!("cannot write the JUnit report: {e}")),
        }
    }
    if show_coverage {
        for (path, program, cov) in &coverage {
            let p = program.program();
            let all_edges = p.edges();
            let name = |n: u32| p.nodes.get(n as usize).map_or("?".to_string(), |node| p.text(node.name).to_string());
            let nodes_total = p.nodes.len();
            let edges_hit = all_edges.iter().filter(|e| cov.edges.contains(e)).count();
            let pct = |a: usize, b: usize| if b == 0 { 100.0 } else { a as f64 * 100.0 / b as f64 };
            let line = format!(
                "coverage {}: nodes {}/{} ({:.0}%), edges {}/{} ({:.0}%)",
                path.display(),
                cov.nodes.len(),
                nodes_total,
                pct(cov.nodes.len(), nodes_total),
                edges_hit,
                all_edges.len(),
                pct(edges_hit, all_edges.len())
            );
            let untested: Vec<String> = (0..nodes_total as u32).filter(|n| !cov.nodes.contains(n)).map(name).collect();
            let missed: Vec<String> = all_edges
                .iter()
                .filter(|e| !cov.edges.contains(e))
                .map(|&(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            let out = format!(
                "{line}{}{}",
                if untested.is_empty() {
                    String::new()
                } else {
                    format!("\n  untested nodes: {}", untested.join(", "))
                },
                if missed.is_empty() { String::new() } else { format!("\n  untested edges: {}", missed.join(", ")) }
            );
            if human { outln!("{out}") } else { eprintln!("{out}") }
        }
    }
    if failed > 0 { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}
