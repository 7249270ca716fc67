//! JSONPath as Step Functions speaks it.
//!
//! AWS's JSONPath is Jayway's: a *definite* path (only member names and indices) selects one value, and an
//! *indefinite* one (wildcards, slices, unions, filters, deep scan) selects a list. Definite paths are by far
//! the most common, so they are walked here directly, without allocation; indefinite ones are delegated to
//! `serde_json_path` (RFC 9535, whose filter syntax accepts Jayway's `[?(@.x > 1)]`).
//!
//! *Reference paths* (ResultPath, ItemsPath, SecondsPath, …) may only be definite, and ResultPath also writes
//! through one, creating the objects on the way.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use crate::context::ContextObject;

/// What a path is evaluated against: the state's data (`$`) or the context object (`$$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Data,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    /// An array index; a negative one counts from the end, as in Jayway (`[-1]` is the last item).
    Index(i64),
}

/// Where `index` falls in an array of `len` items, if it does.
fn position(index: i64, len: usize) -> Option<usize> {
    let position = if index < 0 {
        len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(index).ok()?
    };
    (position < len).then_some(position)
}

#[derive(Clone)]
enum Selector {
    Definite(Vec<Step>),
    Indefinite(serde_json_path::JsonPath),
}

/// A compiled JSONPath.
#[derive(Clone)]
pub struct Path {
    text: String,
    root: Root,
    selector: Selector,
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({})", self.text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a path selected nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound;

impl Path {
    /// Parses a JSONPath; `$$…` is accepted only where `allow_context` is set.
    pub fn parse(text: &str, allow_context: bool) -> Result<Path, String> {
        let (root, rest) = if let Some(rest) = text.strip_prefix("$$") {
            if !allow_context {
                return Err(format!(
                    "'{text}' refers to the context object, which is not allowed here"
                ));
            }
            (Root::Context, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (Root::Data, rest)
        } else {
            return Err(format!("'{text}' is not a JSONPath: it must start with '$'"));
        };
        if let Some(steps) = parse_definite(rest)? {
            return Ok(Path {
                text: text.to_owned(),
                root,
                selector: Selector::Definite(steps),
            });
        }
        let rfc = format!("${rest}");
        match serde_json_path::JsonPath::parse(&rfc) {
            Ok(path) => Ok(Path {
                text: text.to_owned(),
                root,
                selector: Selector::Indefinite(path),
            }),
            Err(error) => Err(format!("'{text}' is not a valid JSONPath: {error}")),
        }
    }

    /// Parses a reference path: definite, and never the context object.
    pub fn parse_reference(text: &str) -> Result<Path, String> {
        Path::parse_reference_in(text, false)
    }

    /// Parses a reference path that may start from the context object (`$$.`), as a Map's
    /// ItemsPath may.
    pub fn parse_reference_in(text: &str, allow_context: bool) -> Result<Path, String> {
        let path = Path::parse(text, allow_context)?;
        if !path.is_definite() {
            return Err(format!(
                "'{text}' is not a reference path: wildcards, filters and slices are not allowed"
            ));
        }
        Ok(path)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> Root {
        self.root
    }

    pub fn is_definite(&self) -> bool {
        matches!(self.selector, Selector::Definite(_))
    }

    /// The steps of a definite path.
    pub fn steps(&self) -> &[Step] {
        match &self.selector {
            Selector::Definite(steps) => steps,
            Selector::Indefinite(_) => &[],
        }
    }

    /// Selects from `value`: the value itself for a definite path, a list for an indefinite one.
    pub fn select<'v>(&self, value: &'v Value) -> Result<Cow<'v, Value>, NotFound> {
        match &self.selector {
            Selector::Definite(steps) => walk(value, steps).map(Cow::Borrowed).ok_or(NotFound),
            Selector::Indefinite(path) => Ok(Cow::Owned(Value::Array(
                path.query(value).all().into_iter().cloned().collect(),
            ))),
        }
    }

    /// Selects from an owned value, moving the selected part out instead of cloning it.
    pub fn select_owned(&self, value: Value) -> Result<Value, NotFound> {
        match &self.selector {
            Selector::Definite(steps) if steps.is_empty() => Ok(value),
            Selector::Definite(steps) => take(value, steps).ok_or(NotFound),
            Selector::Indefinite(_) => self.select(&value).map(Cow::into_owned),
        }
    }

    fn misfit(&self) -> String {
        format!(
            "Unable to apply ResultPath '{}': the path does not fit the shape of the input",
            self.text
        )
    }

    /// Whether [`Path::write`] can write into `target`, checked without changing it.
    pub fn check_writable(&self, target: &Value) -> Result<(), String> {
        // `None` from the step where the write starts creating objects (a missing field, or one holding
        // a scalar, which the write replaces): a field can be added to them, an index cannot.
        let mut slot = Some(target);
        for step in self.steps() {
            slot = match (step, slot) {
                (Step::Field(_), None) => None,
                (Step::Index(index), None) => {
                    return Err(format!(
                        "Unable to apply ResultPath '{}': index {index} needs an array, and the input has none there",
                        self.text
                    ))
                }
                (Step::Field(name), Some(Value::Object(map))) => {
                    map.get(name).filter(|v| v.is_object() || v.is_array())
                }
                (Step::Index(index), Some(Value::Array(items))) if position(*index, items.len()).is_some() => {
                    position(*index, items.len()).and_then(|i| items.get(i))
                }
                (_, Some(other)) => {
                    return Err(format!(
                        "Unable to apply ResultPath '{}': the path does not fit the shape of the input ({})",
                        self.text,
                        describe(other)
                    ))
                }
            };
        }
        Ok(())
    }

    /// Writes `result` into `target` at this (definite) path, as ResultPath does, creating missing objects.
    /// Call [`Path::check_writable`] first to keep `target` intact when the path does not fit.
    pub fn write(&self, target: Value, result: Value) -> Result<Value, String> {
        self.check_writable(&target)?;
        let steps = self.steps();
        let Some((last, parents)) = steps.split_last() else {
            return Ok(result);
        };
        let mut target = target;
        let mut slot = &mut target;
        for step in parents {
            slot = match step {
                Step::Field(name) => {
                    let map = as_object(slot).ok_or_else(|| self.misfit())?;
                    let entry = map.entry(name.clone()).or_insert(Value::Null);
                    if !entry.is_object() && !entry.is_array() {
                        *entry = Value::Object(Map::new());
                    }
                    entry
                }
                Step::Index(index) => match slot {
                    Value::Array(items) => match position(*index, items.len()).and_then(|i| items.get_mut(i)) {
                        Some(item) => item,
                        None => {
                            return Err(format!(
                                "Unable to apply ResultPath '{}': index {index} is out of range",
                                self.text
                            ))
                        }
                    },
                    _ => {
                        return Err(format!(
                            "Unable to apply ResultPath '{}': index {index} is out of range",
                            self.text
                        ))
                    }
                },
            };
        }
        match last {
            Step::Field(name) => {
                as_object(slot)
                    .ok_or_else(|| self.misfit())?
                    .insert(name.clone(), result);
            }
            Step::Index(index) => match slot.as_array_mut().and_then(|items| {
                let i = position(*index, items.len())?;
                items.get_mut(i)
            }) {
                Some(item) => *item = result,
                None => {
                    return Err(format!(
                        "Unable to apply ResultPath '{}': index {index} is out of range",
                        self.text
                    ))
                }
            },
        }
        Ok(target)
    }
}

/// The object in `slot`, made one if it was null (a field the write is creating). `check_writable` has
/// established that a field step meets nothing else, so `None` means the value changed under the write.
fn as_object(slot: &mut Value) -> Option<&mut Map<String, Value>> {
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn walk<'v>(mut value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Value::Object(map)) => map.get(name)?,
            (Step::Index(index), Value::Array(items)) => items.get(position(*index, items.len())?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn take(mut value: Value, steps: &[Step]) -> Option<Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Value::Object(mut map)) => map.remove(name)?,
            (Step::Index(index), Value::Array(mut items)) => {
                let i = position(*index, items.len())?;
                items.swap_remove(i)
            }
            _ => return None,
        };
    }
    Some(value)
}

/// Parses `.a.b[0]['c d']` into steps; `Ok(None)` when the path is valid JSONPath but not definite.
fn parse_definite(rest: &str) -> Result<Option<Vec<Step>>, String> {
    let mut steps = Vec::new();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let start = i + 1;
                if bytes.get(start) == Some(&b'.') {
                    return Ok(None); // deep scan
                }
                let end = rest[start..].find(['.', '[']).map_or(rest.len(), |n| start + n);
                let name = &rest[start..end];
                if name.is_empty() {
                    return Err(format!("'${rest}' has an empty member name"));
                }
                if name == "*" || name.contains(['*', '?', '@', '(', ')', ',', ':', ']', '\'', '"']) {
                    return Ok(None);
                }
                if name.contains(char::is_whitespace) {
                    return Err(format!("'${rest}' has whitespace in member name '{name}'"));
                }
                steps.push(Step::Field(name.to_owned()));
                i = end;
            }
            b'[' => {
                let Some(close) = bracket_end(rest, i) else {
                    return Err(format!("'${rest}' has an unclosed '['"));
                };
                let inner = rest[i + 1..close].trim();
                if let Some(name) = quoted(inner) {
                    steps.push(Step::Field(name));
                } else if is_index(inner) {
                    let index = inner
                        .parse()
                        .map_err(|_| format!("'${rest}' has an index out of range"))?;
                    steps.push(Step::Index(index));
                } else {
                    return Ok(None);
                }
                i = close + 1;
            }
            _ => {
                return Err(format!(
                    "'${rest}' is not a valid JSONPath: unexpected '{}'",
                    &rest[i..]
                ))
            }
        }
    }
    Ok(Some(steps))
}

/// `0`, `12` or `-1`: one array index, which keeps a path definite.
fn is_index(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The index of the `]` closing the bracket at `open`, skipping quoted text.
fn bracket_end(text: &str, open: usize) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (offset, c) in text[open + 1..].char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(open + 1 + offset),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// The name inside `'…'` or `"…"`, when `inner` is exactly one quoted name.
fn quoted(inner: &str) -> Option<String> {
    let quote = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = inner.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut name = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(chars.next()?),
            c if c == quote => return None, // a union such as ['a','b']
            c => name.push(c),
        }
    }
    Some(name)
}

/// Reads a path from the data or the context object, as the `.$` fields do.
pub(crate) fn select_from<'v>(
    path: &Path,
    data: &'v Value,
    context: &'v ContextObject<'_>,
) -> Result<Cow<'v, Value>, NotFound> {
    match path.root() {
        Root::Data => path.select(data),
        Root::Context => context.select(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn definite_paths_select_one_value() {
        let data = json!({"a": {"b c": [10, 20]}, "x": 1});
        let path = Path::parse("$.a['b c'][1]", false).unwrap();
        assert!(path.is_definite());
        assert_eq!(path.select(&data).unwrap().into_owned(), json!(20));
        assert_eq!(Path::parse("$.missing", false).unwrap().select(&data), Err(NotFound));
        let last = Path::parse("$.a['b c'][-1]", false).unwrap();
        assert!(last.is_definite());
        assert_eq!(last.select(&data).unwrap().into_owned(), json!(20));
        assert_eq!(
            Path::parse("$.a['b c'][-3]", false).unwrap().select(&data),
            Err(NotFound)
        );
    }

    #[test]
    fn indefinite_paths_select_a_list() {
        let data = json!({"items": [{"p": 5}, {"p": 15}, {"p": 25}]});
        let path = Path::parse("$.items[?(@.p > 10)].p", false).unwrap();
        assert!(!path.is_definite());
        assert_eq!(path.select(&data).unwrap().into_owned(), json!([15, 25]));
        assert_eq!(
            Path::parse("$..p", false).unwrap().select(&data).unwrap().into_owned(),
            json!([5, 15, 25])
        );
        let both = Path::parse("$.items[?(@.p > 10 && !(@.p == 25))].p", false).unwrap();
        assert_eq!(both.select(&data).unwrap().into_owned(), json!([15]));
    }

    #[test]
    fn bad_paths_are_rejected() {
        assert!(Path::parse("a.b", false).is_err());
        assert!(Path::parse("$$.Execution.Id", false).is_err());
        assert!(Path::parse("$.a[", false).is_err());
        assert!(Path::parse("$.a..", false).is_err());
        assert!(Path::parse_reference("$.a[*]").is_err());
        // Jayway extensions beyond RFC 9535 are refused rather than misread.
        assert!(Path::parse("$.a[?(@.x =~ /re/)]", false).is_err());
        assert!(Path::parse("$.a.length()", false).is_err());
    }

    #[test]
    fn writing_creates_intermediate_objects() {
        let path = Path::parse_reference("$.a.b").unwrap();
        assert_eq!(
            path.write(json!({"k": 1}), json!(2)).unwrap(),
            json!({"k": 1, "a": {"b": 2}})
        );
        assert!(path.write(json!("text"), json!(2)).is_err());
    }

    #[test]
    fn an_index_into_an_object_being_created_is_refused_before_writing() {
        let missing = Path::parse_reference("$.new[0]").unwrap();
        assert!(missing.check_writable(&json!({"x": 1})).is_err());
        let scalar = Path::parse_reference("$.x[0].y").unwrap();
        assert!(scalar.check_writable(&json!({"x": 1})).is_err());
        let existing = Path::parse_reference("$.list[0].y").unwrap();
        assert_eq!(
            existing.write(json!({"list": [{}]}), json!(2)).unwrap(),
            json!({"list": [{"y": 2}]})
        );
    }

    /// Small JSON values of the shapes a ResultPath meets: objects and arrays over the names and
    /// indexes the paths below use, and scalars.
    fn shallow_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![Just(Value::Null), any::<i8>().prop_map(Value::from), Just(json!("s"))];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map(prop_oneof![Just("a"), Just("b")], inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    fn step() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(".a".to_owned()),
            Just(".b".to_owned()),
            (-2i8..3).prop_map(|i| format!("[{i}]"))
        ]
    }

    proptest! {
        /// The engine calls `check_writable` so that a ResultPath that cannot be applied leaves the
        /// state's input whole for its Catch and Retry: so `write` must never fail where the check passed.
        #[test]
        fn write_fails_only_where_the_check_fails(
            target in shallow_value(),
            steps in proptest::collection::vec(step(), 1..4),
        ) {
            let path = Path::parse_reference(&format!("${}", steps.concat())).unwrap();
            let checked = path.check_writable(&target);
            let written = path.write(target.clone(), json!("result"));
            prop_assert_eq!(checked.is_ok(), written.is_ok(), "{} on {}", path.text, target);
        }
    }
}
