//! Integration tests of `botc serve`: its roles over real loopback HTTP and a real data
//! directory, the fake platforms, and the port contract against the embedded store.

mod contract;
mod harness;
mod platforms;
mod serve;
mod worker;

use botc_compiler::{NoImports, Syntax, compile, emit};
use botc_runtime::Loaded;

/// Compiles a YAML flow and loads it as a worker would: from bytes, verified.
pub fn load(yaml: &str) -> Loaded {
    let c = compile("test.yaml", yaml, Syntax::Yaml, &mut NoImports);
    let checked = c.program.as_ref().unwrap_or_else(|| panic!("flow checks clean: {:#?}", c.diagnostics));
    let bytes = emit::emit(checked, &emit::Options { debug: None }).encode();
    Loaded::from_bytes(&bytes).expect("emitted programs load")
}
