//! Run-time values and how they render in templates.

use serde_json::Value as Json;
use std::fmt;

/// A value on the VM's stack or in a variable. `Unset` is a variable nothing assigned yet;
/// the checker proves a flow never reads one, so reading it is a VM bug.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Unset,
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    List(Vec<String>),
    Json(Json),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unset => "unset",
            Value::Text(_) => "text",
            Value::Int(_) => "integer",
            Value::Num(_) => "number",
            Value::Bool(_) => "boolean",
            Value::List(_) => "list",
            Value::Json(_) => "json",
        }
    }

    /// A json value as the closest static-type value, so operators see one shape.
    pub fn from_json(j: &Json) -> Value {
        match j {
            Json::String(s) => Value::Text(s.clone()),
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Num(n.as_f64().unwrap_or(0.0)),
            },
            Json::Array(items) if items.iter().all(Json::is_string) => {
                Value::List(items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
            }
            other => Value::Json(other.clone()),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::Unset => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Int(i) => Json::from(*i),
            Value::Num(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
            Value::Bool(b) => Json::Bool(*b),
            Value::List(l) => Json::Array(l.iter().cloned().map(Json::String).collect()),
            Value::Json(j) => j.clone(),
        }
    }
}

/// Numbers print in their shortest form (`27`, `8.5`), lists joined with `, `, json null as
/// nothing: what a person expects to read in a message.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unset => Ok(()),
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Num(n) => write!(f, "{}", fmt_num(*n)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(l) => f.write_str(&l.join(", ")),
            Value::Json(Json::Null) => Ok(()),
            Value::Json(Json::String(s)) => f.write_str(s),
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}

pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}
