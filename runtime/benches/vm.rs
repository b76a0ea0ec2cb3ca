//! VM throughput. Run: `cargo bench -p botc-runtime --bench vm`. Figures go in BENCHMARKS.md.
//!
//! - `typical_step`: one event through a say + ask + branch flow on an in-memory session,
//!   decoding the session before and encoding it after, as a worker does (`step_in_place`:
//!   a worker never persists a session whose step failed).
//! - `instructions`: a step that runs a long straight line of arithmetic, for raw
//!   instructions per second (reported as throughput in elements = instructions).
//! - `session_codec`: encode + decode of the typical session.

use botc_compiler::{NoImports, Syntax, compile, emit};
use botc_runtime::{Context, Input, Limits, Loaded, Session, step, step_in_place};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const TYPICAL: &str = r#"
flow: typical
start: ask_size
vars:
  size: text
  count: { type: integer, default: 0 }
nodes:
  ask_size:
    ask: "Hi {{ user.name }}, small or large? ({{ count }} so far)"
    into: size
    expect: { choice: [small, large] }
    next: check
  check:
    branch:
      - when: 'size == "large" and count < 1000000'
        goto: big
    else: small
  big:
    set: { count: count + 1 }
    next: confirm
  small:
    set: { count: count + 2 }
    next: confirm
  confirm:
    say: "A {{ size }} one, coming up! That makes {{ count }}."
    next: ask_size
"#;

fn load(src: &str) -> Loaded {
    let c = compile("bench.yaml", src, Syntax::Yaml, &mut NoImports);
    let bytes = emit::emit(c.program.as_ref().expect("clean"), &emit::Options { debug: None }).encode();
    Loaded::from_bytes(&bytes).expect("loads")
}

fn straight_line(n: usize) -> String {
    // One variable per assignment: a `set` names each variable once.
    let mut s = String::from("flow: line\nstart: calc\nvars:\n");
    for i in 0..=n {
        s += &format!("  x{i}: {{ type: integer, default: 1 }}\n");
    }
    s += "nodes:\n  calc:\n    set:\n";
    for i in 0..n {
        s += &format!("      x{}: '(x{i} * 3 + {i}) % 1000'\n", i + 1);
    }
    s += "    next: done\n  done:\n    end:\n";
    s
}

fn bench(c: &mut Criterion) {
    let program = load(TYPICAL);
    let ctx = Context { user_name: "Ada".into(), ..Context::default() };
    let limits = Limits::default();
    let mut session = program.new_session();
    step(&program, &mut session, Input::Text("hi".into()), &ctx, 0, &limits).expect("starts");
    let bytes = session.encode();
    println!("typical session: {} bytes encoded", bytes.len());

    let mut g = c.benchmark_group("vm");
    g.throughput(Throughput::Elements(1));
    let mut stored = bytes.clone();
    let mut flip = false;
    g.bench_function("typical_step", |b| {
        b.iter(|| {
            let mut s = Session::decode(black_box(&stored)).expect("decodes");
            flip = !flip;
            let answer = if flip { "large" } else { "small" };
            let out = step_in_place(&program, &mut s, Input::Text(answer.into()), &ctx, 0, &limits)
                .unwrap_or_else(|e| panic!("{e}"));
            stored = s.encode();
            out
        })
    });

    let line = load(&straight_line(200));
    let ninstr = {
        let mut s = line.new_session();
        let mut fuel = 1u32;
        // Find the instruction count by the smallest fuel that does not trap.
        while step(&line, &mut s.clone(), Input::Text("go".into()), &ctx, 0, &Limits { fuel }).is_err() {
            fuel += 1;
        }
        s = line.new_session();
        let _ = step(&line, &mut s, Input::Text("go".into()), &ctx, 0, &limits);
        fuel
    };
    println!("straight line: {ninstr} instructions per step");
    g.throughput(Throughput::Elements(u64::from(ninstr)));
    g.bench_function("instructions", |b| {
        b.iter(|| {
            let mut s = line.new_session();
            step(&line, &mut s, Input::Text("go".into()), &ctx, 0, &limits).expect("runs")
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("session_codec", |b| {
        b.iter(|| Session::decode(&black_box(&session).encode()).expect("round trip"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
