//! Any sequence of inputs, on every example flow: the VM never hits one of its own bugs,
//! and sessions always survive their encoding.

use botc_runtime::vm::Error;
use botc_runtime::{Context, Input, Limits, Loaded, Session, step};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

struct Disk;
impl botc_compiler::Loader for Disk {
    fn load(&mut self, importer: &str, path: &str) -> Result<(String, String), String> {
        let full = Path::new(importer).parent().unwrap_or(Path::new("")).join(path);
        Ok((full.to_string_lossy().into_owned(), std::fs::read_to_string(&full).map_err(|e| e.to_string())?))
    }
}

/// Every ok and example flow, compiled once for all cases.
fn programs() -> &'static [Loaded] {
    static PROGRAMS: std::sync::OnceLock<Vec<Loaded>> = std::sync::OnceLock::new();
    PROGRAMS.get_or_init(compile_all)
}

fn compile_all() -> Vec<Loaded> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flows");
    let mut out = Vec::new();
    for dir in ["ok", "examples"] {
        for e in std::fs::read_dir(root.join(dir)).expect("exists") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml") && !p.to_string_lossy().ends_with(".test.yaml") {
                let name = p.to_string_lossy().into_owned();
                let c = botc_compiler::compile(
                    &name,
                    &std::fs::read_to_string(&p).expect("reads"),
                    botc_compiler::Syntax::Yaml,
                    &mut Disk,
                );
                let bytes = botc_compiler::emit::emit(
                    c.program.as_ref().expect("clean"),
                    &botc_compiler::emit::Options { debug: None },
                )
                .encode();
                out.push(Loaded::from_bytes(&bytes).expect("loads"));
            }
        }
    }
    out
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        prop_oneof![
            Just("yes".to_string()),
            Just("no".to_string()),
            Just("42".to_string()),
            Just("3.5".to_string()),
            Just("a@b.co".to_string()),
            Just("large".to_string()),
            Just("medium".to_string()),
            Just("done".to_string()),
            Just("12345".to_string()),
            Just("".to_string()),
            ".{0,12}",
        ]
        .prop_map(Input::Text),
        prop_oneof![Just("small".to_string()), Just("yes".to_string()), ".{0,6}"].prop_map(Input::Button),
        (0u32..6).prop_map(|timer| Input::Timer { timer }),
        (
            prop_oneof![Just(200u16), Just(404), Just(0), Just(201)],
            prop_oneof![
                Just(serde_json::json!({"id": 7, "status": "open", "slots": ["9:00"], "available": true})),
                Just(serde_json::Value::Null),
                Just(serde_json::json!("text")),
            ]
        )
            .prop_map(|(status, body)| Input::Http { status, body }),
        Just(Input::HandBack),
    ]
}

proptest! {
    #[test]
    fn no_input_sequence_reaches_a_vm_bug(pick in any::<prop::sample::Index>(), inputs in proptest::collection::vec(input(), 1..25)) {
        let program = pick.get(programs());
        let mut session = program.new_session();
        for (i, input) in inputs.into_iter().enumerate() {
            let ctx = Context { event_id: format!("e{i}"), user_name: "Ada".into(), ..Context::default() };
            match step(program, &mut session, input, &ctx, 1_000 + i as u64 * 60, &Limits::default()) {
                Ok(_) | Err(Error::Trap(_)) => {}
                Err(Error::Bug(b)) => prop_assert!(false, "VM bug on {}: {b:?}", program.program().name),
            }
            prop_assert_eq!(Session::decode(&session.encode()), Ok(session.clone()));
        }
    }
}
