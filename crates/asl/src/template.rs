//! Payload templates: `Parameters`, `ResultSelector` and `ItemSelector`.
//!
//! A template is JSON in which a key ending in `.$` takes its value from a path into the data (`$…`), the
//! context object (`$$…`) or an intrinsic function (`States.…`). Templates are compiled when the definition is
//! parsed, so that a bad path is a definition error and a run does no parsing.

use serde_json::{Map, Value};

use crate::error::Failure;
use crate::intrinsic::{looks_like_intrinsic, Intrinsic, Scope};
use crate::path::{select_from, Path, Root};

#[derive(Debug, Clone)]
enum Node {
    /// A subtree with no `.$` key anywhere in it, copied as is.
    Literal(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Path {
        key: String,
        path: Path,
    },
    Call(Intrinsic),
}

/// A compiled payload template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Node,
}

impl Template {
    /// Compiles `value`; the error names the offending key, as a dotted location below the template's field.
    pub fn compile(value: &Value) -> Result<Template, (String, String)> {
        Ok(Template {
            root: compile_node(value, "")?,
        })
    }

    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, Failure> {
        evaluate_node(&self.root, scope)
    }
}

fn compile_node(value: &Value, at: &str) -> Result<Node, (String, String)> {
    match value {
        Value::Object(map) => {
            if !contains_dynamic_key(value) {
                return Ok(Node::Literal(value.clone()));
            }
            let mut fields = Vec::with_capacity(map.len());
            for (key, child) in map {
                let location = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                if let Some(name) = key.strip_suffix(".$") {
                    let Value::String(expression) = child else {
                        return Err((
                            location,
                            "a field ending in '.$' must have a string value: a path or an intrinsic function".into(),
                        ));
                    };
                    let node = if looks_like_intrinsic(expression) {
                        Node::Call(Intrinsic::parse(expression).map_err(|message| (location.clone(), message))?)
                    } else {
                        Node::Path {
                            key: key.clone(),
                            path: Path::parse(expression, true).map_err(|message| (location.clone(), message))?,
                        }
                    };
                    fields.push((name.to_owned(), node));
                } else {
                    fields.push((key.clone(), compile_node(child, &location)?));
                }
            }
            Ok(Node::Object(fields))
        }
        Value::Array(items) if contains_dynamic_key(value) => items
            .iter()
            .enumerate()
            .map(|(i, item)| compile_node(item, &format!("{at}[{i}]")))
            .collect::<Result<_, _>>()
            .map(Node::Array),
        other => Ok(Node::Literal(other.clone())),
    }
}

fn contains_dynamic_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, child)| key.ends_with(".$") || contains_dynamic_key(child)),
        Value::Array(items) => items.iter().any(contains_dynamic_key),
        _ => false,
    }
}

fn evaluate_node(node: &Node, scope: &Scope<'_>) -> Result<Value, Failure> {
    Ok(match node {
        Node::Literal(value) => value.clone(),
        Node::Object(fields) => {
            let mut map = Map::new();
            for (key, child) in fields {
                map.insert(key.clone(), evaluate_node(child, scope)?);
            }
            Value::Object(map)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| evaluate_node(item, scope))
                .collect::<Result<_, _>>()?,
        ),
        Node::Path { key, path } => match select_from(path, scope.data, scope.context) {
            Ok(value) => value.into_owned(),
            Err(_) => {
                let source = match path.root() {
                    Root::Context => scope.context.to_value(),
                    Root::Data => scope.data.clone(),
                };
                return Err(Failure::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{key}' could not be found in the input '{source}'"
                )));
            }
        },
        Node::Call(call) => call.evaluate(scope)?,
    })
}
