//! Integration tests of the runtime: conversations on the real VM, compiled by the real
//! compiler.

mod conversations;
mod migration;
mod robustness;

use botc_compiler::{NoImports, Syntax, compile, emit};
use botc_runtime::{Context, Effect, Input, Limits, Loaded, Session, Step, step};

/// Compiles a YAML flow and loads it as a worker would: from bytes, verified.
pub fn load(yaml: &str) -> Loaded {
    let c = compile("test.yaml", yaml, Syntax::Yaml, &mut NoImports);
    let checked = c.program.as_ref().unwrap_or_else(|| panic!("flow checks clean: {:#?}", c.diagnostics));
    let bytes = emit::emit(checked, &emit::Options { debug: None }).encode();
    Loaded::from_bytes(&bytes).expect("emitted programs load")
}

/// A conversation driver with a virtual clock.
pub struct Chat {
    pub program: Loaded,
    pub session: Session,
    pub now: u64,
    pub events: u64,
}

impl Chat {
    pub fn new(yaml: &str) -> Chat {
        let program = load(yaml);
        let session = program.new_session();
        Chat { program, session, now: 1_000_000, events: 0 }
    }

    pub fn send(&mut self, input: Input) -> Step {
        self.events += 1;
        let ctx = Context {
            event_id: format!("e{}", self.events),
            user_id: "u1".into(),
            user_name: "Ada".into(),
            platform: "web".into(),
            event_text: match &input {
                Input::Text(t) | Input::Button(t) => t.clone(),
                _ => String::new(),
            },
            ..Context::default()
        };
        step(&self.program, &mut self.session, input, &ctx, self.now, &Limits::default()).expect("step succeeds")
    }

    pub fn say(&mut self, text: &str) -> Vec<String> {
        texts(&self.send(Input::Text(text.into())))
    }
}

pub fn texts(step: &Step) -> Vec<String> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}
