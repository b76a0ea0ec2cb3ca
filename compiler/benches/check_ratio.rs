//! `check` against YAML-parse-only on the generated 10,000-node flow, measured interleaved
//! (parse, check, parse, check, ...) so both see the same machine: on a shared machine the
//! speed drifts by 10-20 % over a minute, which skews a ratio of two criterion runs taken one
//! after the other. Prints each one's median and the median of each round's ratio (a check
//! over the parse just before it, so drift between rounds cancels).
//! Run: `cargo bench -p botc-compiler --bench check_ratio`. Figures go in BENCHMARKS.md.

use botc_compiler::{FileId, NoImports, Syntax, compile, yaml};
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "large_flow.rs"]
mod large_flow;

#[allow(clippy::disallowed_methods)] // a benchmark measures the real clock
fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this benchmark skips it.
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"check_ratio".contains(a.as_str())) {
        return;
    }
    let src = large_flow::large_flow(10_000);
    assert!(!compile("large.yaml", &src, Syntax::Yaml, &mut NoImports).has_errors(), "the flow checks clean");
    let (mut parse, mut check, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..65 {
        let p = time(|| drop(black_box(yaml::parse(FileId(0), black_box(&src)))));
        let c = time(|| drop(black_box(compile("large.yaml", black_box(&src), Syntax::Yaml, &mut NoImports))));
        // The first rounds warm caches and the allocator.
        if round >= 5 {
            parse.push(p);
            check.push(c);
            ratios.push(c.as_secs_f64() / p.as_secs_f64());
        }
    }
    let (p, c) = (median(parse), median(check));

    println!("10k_nodes yaml_parse_only median {:.1} ms", p.as_secs_f64() * 1e3);
    println!("10k_nodes check           median {:.1} ms", c.as_secs_f64() * 1e3);
    ratios.sort_by(f64::total_cmp);
    let (lo, mid, hi) = (ratios[ratios.len() / 4], ratios[ratios.len() / 2], ratios[ratios.len() * 3 / 4]);
    println!("10k_nodes check / parse   {mid:.2} (median of each round's ratio; quartiles {lo:.2}-{hi:.2})");
}
