//! `botc check` on a generated 10,000-node flow, against parsing the same YAML alone, and
//! `botc compile` (check, emit, encode) against check; loading (decode, decompress, verify)
//! the compiled program, against loading the same program in the uncompressed version 1
//! layout.
//! Run: `cargo bench -p botc-compiler --bench check`. Figures go in BENCHMARKS.md.

use botc_compiler::{FileId, NoImports, Syntax, compile, yaml};
use criterion::{Criterion, criterion_group, criterion_main};
use large_flow::large_flow;
use std::hint::black_box;

#[path = "large_flow.rs"]
mod large_flow;

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
