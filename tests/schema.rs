//! docs/flow.schema.json describes the YAML form for editors (yaml-language-server): every
//! YAML flow in `flows/ok` and `flows/examples` validates against it, and it rejects the
//! structural mistakes the checker also reports.

use crate::{flow_files, root};
use botc_compiler::yaml::{self, Node, Value};
use serde_json::{Value as Json, json};

/// A YAML tree as JSON, typing plain scalars the way YAML 1.2's core schema does.
fn to_json(n: &Node) -> Json {
    match &n.value {
        Value::Null => Json::Null,
        Value::Scalar { text, quoted: true } => json!(text.as_str()),
        Value::Scalar { text, quoted: false } => match text.as_str() {
            "true" | "True" | "TRUE" => json!(true),
            "false" | "False" | "FALSE" => json!(false),
            t => t
                .parse::<i64>()
                .map(|i| json!(i))
                .or_else(|_| t.parse::<f64>().map(|f| json!(f)))
                .unwrap_or_else(|_| json!(t)),
        },
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => {
            Json::Object(pairs.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v))).collect())
        }
    }
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/flow.schema.json")).expect("schema exists");
    let schema: Json = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema is a valid JSON Schema")
}

fn load(src: &str) -> Json {
    to_json(&yaml::parse(botc_compiler::FileId(0), src).expect("valid YAML"))
}

#[test]
fn every_yaml_flow_validates_against_the_schema() {
    let v = validator();
    let files: Vec<String> = flow_files("flows/ok")
        .into_iter()
        .chain(flow_files("flows/examples"))
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    assert!(files.len() >= 15);
    for f in files {
        let doc = load(&std::fs::read_to_string(root().join(&f)).expect("reads"));
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{f}:\n{}", errors.join("\n"));
    }
}

#[test]
fn the_schema_rejects_what_the_checker_rejects() {
    let v = validator();
    for (what, src) in [
        ("unknown field", "flow: a\nstart: x\nnodes:\n  x:\n    say: hi\n    nxt: y\n"),
        ("two kinds", "flow: a\nstart: x\nnodes:\n  x:\n    say: hi\n    goto: y\n"),
        ("bad duration", "flow: a\nstart: x\nnodes:\n  x:\n    wait: 90 minutes\n    next: x\n"),
        ("unknown type", "flow: a\nstart: x\nvars:\n  n: integr\nnodes:\n  x:\n    end:\n"),
        ("missing flow", "start: x\nnodes:\n  x:\n    end:\n"),
    ] {
        assert!(!v.is_valid(&load(src)), "the schema accepts a flow with: {what}");
    }
}
