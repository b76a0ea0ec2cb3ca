//! Emitted bytecode: deterministic, identical for both forms of a flow, always verifiable,
//! and a malformed file is a load error, never a panic.

use botc_bytecode::{Op, Program, load, verify};
use botc_compiler::{Loader, Syntax, compile, emit};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Reads imports from disk, relative to the importing file.
struct Disk;
impl Loader for Disk {
    fn load(&mut self, importer: &str, path: &str) -> Result<(String, String), String> {
        let full = Path::new(importer).parent().unwrap_or(Path::new("")).join(path);
        let text = std::fs::read_to_string(&full).map_err(|e| e.to_string())?;
        Ok((full.to_string_lossy().into_owned(), text))
    }
}

fn good_flows() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flows");
    let mut out = Vec::new();
    let mut stack = vec![root.join("ok"), root.join("examples")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("exists") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if Syntax::from_path(&p.to_string_lossy()).is_some() && !p.to_string_lossy().ends_with(".test.yaml")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn build(path: &Path) -> Program {
    let name = path.to_string_lossy();
    let text = std::fs::read_to_string(path).expect("reads");
    let c = compile(&name, &text, Syntax::from_path(&name).expect("flow file"), &mut Disk);
    let checked = c.program.as_ref().unwrap_or_else(|| panic!("{name} checks clean: {:?}", c.diagnostics));
    emit::emit(checked, &emit::Options { debug: None })
}

#[test]
fn output_is_deterministic_and_the_same_for_both_forms() {
    for path in good_flows().into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let yaml = build(&path).encode();
        assert_eq!(yaml, build(&path).encode(), "{} compiles differently twice", path.display());
        let dsl = build(&path.with_extension("flow")).encode();
        assert!(yaml == dsl, "{} and its .flow twin compile to different bytes", path.display());
    }
}

#[test]
fn every_emitted_program_verifies_and_round_trips() {
    for path in good_flows() {
        let p = build(&path);
        let bytes = p.encode();
        let loaded = load(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded.program(), &p);
        // Each string once.
        let mut consts = p.consts.clone();
        consts.sort();
        consts.dedup();
        assert_eq!(consts.len(), p.consts.len(), "{}: duplicate constants", path.display());
    }
}

#[test]
fn debug_spans_are_optional_and_outside_the_hash() {
    let path = good_flows().into_iter().find(|p| p.ends_with("pizza_order.yaml")).expect("example exists");
    let name = path.to_string_lossy();
    let text = std::fs::read_to_string(&path).expect("reads");
    let c = compile(&name, &text, Syntax::Yaml, &mut Disk);
    let checked = c.program.as_ref().expect("clean");
    let plain = emit::emit(checked, &emit::Options { debug: None });
    let debug = emit::emit(checked, &emit::Options { debug: Some(&c.sources) });
    assert_eq!(plain.hash, debug.hash);
    let spans = debug.debug.as_ref().expect("debug spans");
    assert_eq!(spans.len(), plain.nodes.len());
    assert_eq!(load(&debug.encode()).expect("loads").program(), &debug);
}

#[test]
fn a_wrong_version_or_magic_is_a_clear_error() {
    let bytes = build(&good_flows()[0]).encode();
    let mut v = bytes.clone();
    v[4] = 9;
    assert!(load(&v).unwrap_err().to_string().contains("recompile"));
    assert!(load(b"PK\x03\x04zip").unwrap_err().to_string().contains("not a .botc file"));
    let mut h = version_1(&bytes);
    let last = h.len() - 1;
    h[last] ^= 1;
    assert!(load(&h).unwrap_err().to_string().contains("corrupted"));
    let mut h = bytes.clone();
    let last = h.len() - 1;
    h[last] ^= 1;
    let e = load(&h).unwrap_err().to_string();
    assert!(e.contains("corrupted") || e.contains("damaged"), "{e}");
}

/// Where a version 2 file's sections start (after magic, version, flags, hash and name), and
/// their uncompressed length.
fn body_at(bytes: &[u8]) -> (usize, usize) {
    let name_len = u32::from_le_bytes(bytes[40..44].try_into().expect("4 bytes")) as usize;
    let at = 44 + name_len;
    (at + 4, u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize)
}

/// The version 1 file of a version 2 file: the same header with version 1, then the
/// sections uncompressed (what botc wrote before, and registries still hold).
fn version_1(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let (at, len) = body_at(bytes);
    let mut sections = Vec::new();
    brotli::Decompressor::new(&bytes[at..], 4096).read_to_end(&mut sections).expect("brotli");
    assert_eq!(sections.len(), len);
    let mut v1 = bytes[..at - 4].to_vec();
    v1[4..6].copy_from_slice(&1u16.to_le_bytes());
    v1.extend(sections);
    v1
}

#[test]
fn a_version_1_file_still_loads_as_the_same_program() {
    for path in good_flows() {
        let p = build(&path);
        let v2 = p.encode();
        let v1 = version_1(&v2);
        assert!(v2.len() < v1.len(), "{}: the sections are compressed", path.display());
        let loaded = load(&v1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded.program(), &p, "{}: same program, same hash", path.display());
        assert_eq!(loaded.program().encode(), v2, "{}: re-encoded as version 2", path.display());
    }
}

/// A compressed body that holds more or fewer bytes than the header says (a decompression
/// bomb, or a damaged file) is refused, and so is a length over the file limit.
#[test]
fn a_body_longer_or_shorter_than_its_length_is_refused() {
    let bytes = build(&good_flows()[0]).encode();
    let (at, len) = body_at(&bytes);
    for (claimed, says) in [(len - 1, "not the"), (len + 1, "not the"), (65 * 1024 * 1024, "limit")] {
        let mut b = bytes.clone();
        b[at - 4..at].copy_from_slice(&(claimed as u32).to_le_bytes());
        let e = load(&b).expect_err("refused").to_string();
        assert!(e.contains(says), "claimed {claimed} of {len}: {e}");
    }
}

fn any_program() -> impl Strategy<Value = Program> {
    let programs: Vec<Program> = good_flows().iter().map(|p| build(p)).collect();
    proptest::sample::select(programs)
}

proptest! {

    #[test]
    /// Both versions: damage to a version 2 file mostly breaks its compressed stream, so
    /// the version 1 layout is what reaches the section decoder.
    fn truncated_and_flipped_files_never_panic(p in any_program(), cut in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4)) {
        let v2 = p.encode();
        for bytes in [version_1(&v2), v2] {
            let _ = load(&bytes[..cut.index(bytes.len())]);
            let mut flipped = bytes.clone();
            for (at, bit) in &flips {
                let i = at.index(flipped.len());
                flipped[i] ^= 1 << bit;
            }
            let _ = load(&flipped);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = load(&bytes);
        for version in [b"BOTC\x01\x00", b"BOTC\x02\x00"] {
            let mut with_magic = version.to_vec();
            with_magic.extend(&bytes);
            let _ = load(&with_magic);
        }
    }

    /// Corruption that keeps the hash valid (a buggy or hostile compiler) reaches the
    /// verifier itself, which must refuse or accept without panicking.
    #[test]
    fn the_verifier_survives_resealed_corruption(
        p in any_program(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        table_edit in any::<(u8, u32)>(),
    ) {
        let mut p = p;
        for (at, byte) in &edits {
            if !p.code.is_empty() {
                let i = at.index(p.code.len());
                p.code[i] = *byte;
            }
        }
        match table_edit.0 % 6 {
            0 => if let Some(a) = p.asks.first_mut() { a.next = table_edit.1 },
            1 => if let Some(n) = p.nodes.first_mut() { n.offset = table_edit.1 },
            2 => if let Some(f) = p.flows.last_mut() { f.entry = table_edit.1 },
            3 => p.max_stack = (table_edit.1 % 4) as u16,
            4 => if let Some(h) = p.https.first_mut() { h.var = table_edit.1 as u16 },
            _ => if let Some(a) = p.asks.first_mut() { a.var = table_edit.1 as u16 },
        }
        p.seal();
        let _ = load(&p.encode());
        let _ = verify::verify(p);
    }
}

#[test]
fn the_verifier_catches_each_kind_of_damage() {
    let base = build(&good_flows().into_iter().find(|p| p.ends_with("pizza_order.yaml")).expect("exists"));
    let refuses = |what: &str, edit: &dyn Fn(&mut Program)| {
        let mut p = base.clone();
        edit(&mut p);
        p.seal();
        let e = load(&p.encode()).expect_err(what);
        assert!(matches!(e, botc_bytecode::LoadError::Invalid(_)), "{what}: {e}");
    };
    refuses("jump into the middle of an instruction", &|p| {
        let (at, _) = find(p, |op| matches!(op, Op::Jump { .. }));
        p.code[at + 1..at + 5].copy_from_slice(&1u32.to_le_bytes());
    });
    refuses("constant out of range", &|p| {
        let (at, _) = find(p, |op| matches!(op, Op::PushText { .. }));
        p.code[at + 1..at + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    refuses("variable out of range", &|p| {
        let (at, _) = find(p, |op| matches!(op, Op::Store { .. }));
        p.code[at + 1..at + 3].copy_from_slice(&999u16.to_le_bytes());
    });
    refuses("stack underflow", &|p| {
        let (at, _) = find(p, |op| matches!(op, Op::PushText { .. }));
        // Five `Pop`s where one push was: the first pops the empty stack.
        p.code[at] = 0x0E;
        p.code[at + 1..at + 5].copy_from_slice(&[0x0E; 4]);
    });
    refuses("node table pointing at the wrong instruction", &|p| p.nodes[1].offset = p.nodes[2].offset);
    refuses("ask target outside the code", &|p| p.asks[0].next = p.code.len() as u32 + 10);
    refuses("stack deeper than declared", &|p| p.max_stack = 1);
}

fn find(p: &Program, pred: impl Fn(&Op) -> bool) -> (usize, Op) {
    let mut at = 0;
    while let Some((op, next)) = Op::decode(&p.code, at) {
        if pred(&op) {
            return (at, op);
        }
        at = next;
    }
    panic!("no such instruction");
}

/// The flow's picture from its bytecode: each node's kind and fixed words, and each edge's
/// reason, as the pizza bot's source says.
#[test]
fn the_outline_names_node_kinds_and_edge_reasons_as_the_source_does() {
    use botc_bytecode::EdgeKind;
    let p = build(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flows/examples/pizza_order.yaml"));
    let index = |name: &str| p.nodes.iter().position(|n| p.text(n.name) == name).expect(name) as u32;
    let outline = p.outline();
    let of = |name: &str| &outline[index(name) as usize];
    assert_eq!(
        (of("ask_size").kind, of("ask_size").text.as_str()),
        ("ask", "First things first: what size would you like?")
    );
    assert_eq!(of("check_topping").kind, "branch");
    assert_eq!(of("place_order").kind, "http");
    assert!(
        of("place_order").text.starts_with("POST https://api.luigis.example.com/v1/orders"),
        "{:?}",
        of("place_order")
    );
    assert_eq!(of("add_first").kind, "set");
    assert_eq!(of("order_handoff").kind, "handoff");
    assert_eq!(of("done").kind, "end");
    let edges = p.labelled_edges();
    let has = |a: &str, b: &str, k: EdgeKind| edges.contains(&(index(a), index(b), k));
    assert!(has("ask_size", "confused", EdgeKind::OnInvalid));
    assert!(has("ask_size", "abandoned", EdgeKind::OnTimeout));
    assert!(has("place_order", "order_failed", EdgeKind::OnError));
    assert!(has("place_order", "placed", EdgeKind::Next));
    assert!(has("check_topping", "ask_qty", EdgeKind::When), "the first case: {edges:?}");
    assert!(has("check_topping", "add_more", EdgeKind::Else), "the else: {edges:?}");
    assert!(!has("check_topping", "add_more", EdgeKind::When), "no case leads to add_more: {edges:?}");
    // The unlabelled edges are the same set as before.
    let mut plain: Vec<(u32, u32)> = edges.iter().map(|&(a, b, _)| (a, b)).collect();
    plain.dedup();
    assert_eq!(plain, p.edges());
}
