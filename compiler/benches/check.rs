//! `botc check` on a generated 10,000-node flow, against parsing the same YAML alone, and
//! `botc compile` (check, emit, encode) against check; loading (decode, decompress, verify)
//! the compiled program, against loading the same program in the uncompressed version 1
//! layout.
//! Run: `cargo bench -p botc-compiler --bench check`. Figures go in BENCHMARKS.md.

use botc_compiler::{FileId, NoImports, Syntax, compile, yaml};
use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;

/// A realistic large flow: `n` nodes in groups of ask → branch → set → say, with every
/// group able to loop back through its ask, variables read and written throughout.
fn large_flow(n: usize) -> String {
    let groups = n / 4;
    let mut s = String::from(
        "flow: large\nstart: ask_0\nvars:\n  answer: text\n  count: { type: integer, default: 0 }\nnodes:\n",
    );
    for g in 0..groups {
        let next = if g + 1 == groups { "done".to_string() } else { format!("ask_{}", g + 1) };
        let _ = write!(
            s,
            "  ask_{g}:\n    ask: \"Question {g}, {{{{ user.name }}}}? You said {{{{ count }}}} things.\"\n    into: answer\n    expect: {{ choice: [yes, no, maybe] }}\n    timeout: 10m\n    on_timeout: say_{g}\n    next: branch_{g}\n\
             \x20 branch_{g}:\n    branch:\n      - when: answer == \"yes\" and count < 100\n        goto: set_{g}\n      - when: answer in [\"no\", \"maybe\"]\n        goto: ask_{g}\n    else: say_{g}\n\
             \x20 set_{g}:\n    set:\n      count: count + len(answer) * 2\n    next: say_{g}\n\
             \x20 say_{g}:\n    say: \"Thanks! Step {g} done ({{{{ count }}}}).\"\n    buttons: [Continue, Stop]\n    next: {next}\n"
        );
    }
    s.push_str("  done:\n    end:\n");
    s
}

fn bench(c: &mut Criterion) {
    let src = large_flow(10_000);
    let check = compile("large.yaml", &src, Syntax::Yaml, &mut NoImports);
    assert!(!check.has_errors(), "the generated flow checks clean");
    let mut g = c.benchmark_group("10k_nodes");
    g.sample_size(20);
    g.bench_function("yaml_parse_only", |b| b.iter(|| yaml::parse(FileId(0), black_box(&src)).map(|_| ())));
    g.bench_function("check", |b| b.iter(|| compile("large.yaml", black_box(&src), Syntax::Yaml, &mut NoImports)));
    g.bench_function("compile", |b| {
        b.iter(|| {
            let c = compile("large.yaml", black_box(&src), Syntax::Yaml, &mut NoImports);
            botc_compiler::emit::emit(c.program.as_ref().expect("clean"), &botc_compiler::emit::Options { debug: None })
                .encode()
        })
    });
    let options = botc_compiler::emit::Options { debug: None };
    let bytes = botc_compiler::emit::emit(check.program.as_ref().expect("clean"), &options).encode();
    let v1 = version_1(&bytes);
    g.bench_function("load_verify", |b| b.iter(|| botc_bytecode::load(black_box(&bytes)).expect("loads")));
    g.bench_function("load_verify_version_1", |b| b.iter(|| botc_bytecode::load(black_box(&v1)).expect("loads")));
    g.finish();

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../flows/examples/pizza_order.yaml");
    let src = std::fs::read_to_string(path).expect("the example flow");
    let pizza = compile(path, &src, Syntax::Yaml, &mut NoImports);
    let bytes = botc_compiler::emit::emit(pizza.program.as_ref().expect("clean"), &options).encode();
    let v1 = version_1(&bytes);
    let mut g = c.benchmark_group("pizza_order");
    g.bench_function("load_verify", |b| b.iter(|| botc_bytecode::load(black_box(&bytes)).expect("loads")));
    g.bench_function("load_verify_version_1", |b| b.iter(|| botc_bytecode::load(black_box(&v1)).expect("loads")));
    g.finish();
}

/// The same program in the version 1 layout (sections uncompressed), as earlier botc wrote.
fn version_1(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let name_len = u32::from_le_bytes(bytes[40..44].try_into().expect("4 bytes")) as usize;
    let at = 44 + name_len + 4;
    let mut v1 = bytes[..at - 4].to_vec();
    v1[4..6].copy_from_slice(&1u16.to_le_bytes());
    brotli::Decompressor::new(&bytes[at..], 4096).read_to_end(&mut v1).expect("brotli");
    v1
}

criterion_group!(benches, bench);
criterion_main!(benches);
