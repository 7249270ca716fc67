//! The intrinsic functions (`States.Format(…)` and the other seventeen), parsed once and evaluated per state.
//!
//! Arguments are literals (`'text'` with `\'`, `\{`, `\}`, `\\` escapes, numbers, `true`, `false`, `null`),
//! JSONPaths into the data or the context object, or nested calls. Wrong argument counts are definition errors;
//! wrong argument values fail the execution with `States.Runtime`, which no Catch or Retry takes: AWS reserves
//! `States.IntrinsicFailure` and reports intrinsic function errors under that name.

use std::sync::Mutex;

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Number, Value};
use sha2::Digest;

use crate::context::ContextObject;
use crate::error::Failure;
use crate::path::{select_from, Path};

/// AWS allows at most ten intrinsics nested in one field.
const MAX_NESTING: usize = 10;
/// AWS caps States.ArrayRange results, and the inputs of the string functions, at these sizes.
const MAX_RANGE_ITEMS: usize = 1000;
const MAX_STRING_INPUT: usize = 10_000;

/// What an intrinsic is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub data: &'a Value,
    pub context: &'a ContextObject<'a>,
    /// Unseeded States.MathRandom and States.UUID draw from the execution's generator, so that a seeded
    /// execution is reproducible.
    pub rng: &'a Mutex<ChaCha8Rng>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Function {
    fn from_name(name: &str) -> Option<Function> {
        Some(match name {
            "Format" => Function::Format,
            "StringToJson" => Function::StringToJson,
            "JsonToString" => Function::JsonToString,
            "Array" => Function::Array,
            "ArrayPartition" => Function::ArrayPartition,
            "ArrayContains" => Function::ArrayContains,
            "ArrayRange" => Function::ArrayRange,
            "ArrayGetItem" => Function::ArrayGetItem,
            "ArrayLength" => Function::ArrayLength,
            "ArrayUnique" => Function::ArrayUnique,
            "Base64Encode" => Function::Base64Encode,
            "Base64Decode" => Function::Base64Decode,
            "Hash" => Function::Hash,
            "JsonMerge" => Function::JsonMerge,
            "MathRandom" => Function::MathRandom,
            "MathAdd" => Function::MathAdd,
            "StringSplit" => Function::StringSplit,
            "UUID" => Function::Uuid,
            _ => return None,
        })
    }

    /// The accepted number of arguments, as an inclusive range.
    fn arity(self) -> (usize, usize) {
        match self {
            Function::Format => (1, usize::MAX),
            Function::Array => (0, usize::MAX),
            Function::StringToJson
            | Function::JsonToString
            | Function::ArrayLength
            | Function::ArrayUnique
            | Function::Base64Encode
            | Function::Base64Decode => (1, 1),
            Function::ArrayPartition
            | Function::ArrayContains
            | Function::ArrayGetItem
            | Function::Hash
            | Function::MathAdd
            | Function::StringSplit => (2, 2),
            Function::ArrayRange | Function::JsonMerge => (3, 3),
            Function::MathRandom => (2, 3),
            Function::Uuid => (0, 0),
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    /// A string literal keeps its raw text too: States.Format must tell `\{` from a placeholder.
    Text {
        value: String,
        raw: String,
    },
    Literal(Value),
    Path(Path),
    Call(Box<Intrinsic>),
}

/// A parsed intrinsic call.
#[derive(Debug, Clone)]
pub struct Intrinsic {
    name: String,
    function: Function,
    args: Vec<Arg>,
}

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn looks_like_intrinsic(text: &str) -> bool {
    text.starts_with("States.")
}

impl Intrinsic {
    /// The functions AWS lets a Fail state's ErrorPath and CausePath call: those that return a string.
    pub const TEXT_FUNCTIONS: &'static str = "States.Format, States.JsonToString, States.ArrayGetItem, \
        States.Base64Encode, States.Base64Decode, States.Hash or States.UUID";

    /// Whether this call is to one of [`Intrinsic::TEXT_FUNCTIONS`].
    pub fn returns_text(&self) -> bool {
        matches!(
            self.function,
            Function::Format
                | Function::JsonToString
                | Function::ArrayGetItem
                | Function::Base64Encode
                | Function::Base64Decode
                | Function::Hash
                | Function::Uuid
        )
    }

    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut parser = Parser { text, pos: 0, depth: 0 };
        let call = parser.call()?;
        parser.skip_whitespace();
        if parser.pos != text.len() {
            return Err(format!(
                "unexpected '{}' after the intrinsic function",
                &text[parser.pos..]
            ));
        }
        Ok(call)
    }

    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, Failure> {
        let fail = |message: String| Failure::runtime(format!("{}: {message}", self.name));
        // States.Format reads its template unevaluated: it must tell an escaped brace from a placeholder.
        if self.function == Function::Format {
            return self.format(scope).map(Value::String);
        }
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(evaluate_arg(arg, scope)?);
        }
        if self.function == Function::Array {
            return Ok(Value::Array(args));
        }
        self.apply(args, scope).map_err(fail)
    }

    /// States.Format: a literal template keeps its escapes (`\{` is a brace, not a placeholder); a template
    /// read from a path or a call is used as it is.
    fn format(&self, scope: &Scope<'_>) -> Result<String, Failure> {
        let fail = |message: &str| Failure::runtime(format!("{}: {message}", self.name));
        let Some((first, rest)) = self.args.split_first() else {
            return Err(fail("a template is required"));
        };
        let (template, escapes) = match first {
            Arg::Text { raw, .. } => (raw.clone(), true),
            other => match evaluate_arg(other, scope)? {
                Value::String(text) => (text, false),
                value => return Err(fail(&format!("the template must be a string, not {value}"))),
            },
        };
        let mut values = Vec::with_capacity(rest.len());
        for arg in rest {
            values.push(evaluate_arg(arg, scope)?);
        }
        let mut out = String::with_capacity(template.len());
        let mut values = values.into_iter();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if escapes => out.extend(chars.next()),
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    match values.next() {
                        Some(Value::String(text)) => out.push_str(&text),
                        Some(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => {
                            out.push_str(&value.to_string())
                        }
                        Some(_) => return Err(fail("arguments must be strings, numbers, booleans or null")),
                        None => return Err(fail("the template has more placeholders than arguments")),
                    }
                }
                c => out.push(c),
            }
        }
        if values.next().is_some() {
            return Err(fail("the template has fewer placeholders than arguments"));
        }
        Ok(out)
    }

    fn apply(&self, args: Vec<Value>, scope: &Scope<'_>) -> Result<Value, String> {
        // Arity was checked at parse time; an optional argument that is absent reads as null.
        let mut args = args.into_iter();
        let mut next = || args.next().unwrap_or(Value::Null);
        Ok(match self.function {
            // Handled by `evaluate` before the arguments reach here.
            Function::Array | Function::Format => Value::Array(Vec::new()),
            Function::StringToJson => {
                let text = string(next(), "argument")?;
                serde_json::from_str(&text).map_err(|e| format!("the argument is not valid JSON: {e}"))?
            }
            Function::JsonToString => Value::String(next().to_string()),
            Function::ArrayPartition => {
                let items = array(next(), "first argument")?;
                let size = integer(&next(), "chunk size")?;
                if size <= 0 {
                    return Err("the chunk size must be a positive integer".into());
                }
                let size = usize::try_from(size).map_err(|_| "the chunk size is too large")?;
                Value::Array(items.chunks(size).map(|chunk| Value::Array(chunk.to_vec())).collect())
            }
            Function::ArrayContains => {
                let items = array(next(), "first argument")?;
                let wanted = next();
                Value::Bool(items.contains(&wanted))
            }
            Function::ArrayRange => {
                let start = integer(&next(), "start")?;
                let end = integer(&next(), "end")?;
                let step = integer(&next(), "step")?;
                range(start, end, step)?
            }
            Function::ArrayGetItem => {
                let items = array(next(), "first argument")?;
                let index = integer(&next(), "index")?;
                usize::try_from(index)
                    .ok()
                    .and_then(|index| items.into_iter().nth(index))
                    .ok_or_else(|| format!("index {index} is out of bounds"))?
            }
            Function::ArrayLength => Value::from(array(next(), "argument")?.len()),
            Function::ArrayUnique => {
                let mut unique: Vec<Value> = Vec::new();
                for item in array(next(), "argument")? {
                    if !unique.contains(&item) {
                        unique.push(item);
                    }
                }
                Value::Array(unique)
            }
            Function::Base64Encode => {
                let text = bounded_string(next(), "argument")?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(text))
            }
            Function::Base64Decode => {
                let text = bounded_string(next(), "argument")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("the argument is not valid base64: {e}"))?;
                Value::String(String::from_utf8(bytes).map_err(|_| "the decoded data is not UTF-8 text")?)
            }
            Function::Hash => {
                let data = match next() {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                if data.chars().count() > MAX_STRING_INPUT {
                    return Err(format!("the data is longer than {MAX_STRING_INPUT} characters"));
                }
                let algorithm = string(next(), "algorithm")?;
                Value::String(hash(&algorithm, data.as_bytes())?)
            }
            Function::JsonMerge => {
                let Value::Object(mut left) = next() else {
                    return Err("the first argument must be an object".into());
                };
                let Value::Object(right) = next() else {
                    return Err("the second argument must be an object".into());
                };
                match next() {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err("deep merging is not supported: the third argument must be false".into())
                    }
                    _ => return Err("the third argument must be the boolean false".into()),
                }
                left.extend(right);
                Value::Object(left)
            }
            Function::MathRandom => {
                let start = integer(&next(), "start")?;
                let end = integer(&next(), "end")?;
                if end <= start {
                    return Err(format!("the end ({end}) must be greater than the start ({start})"));
                }
                let drawn = match next() {
                    Value::Null => lock(scope.rng).gen_range(start..end),
                    seed => {
                        let seed = integer(&seed, "seed")?;
                        ChaCha8Rng::seed_from_u64(seed as u64).gen_range(start..end)
                    }
                };
                Value::from(drawn)
            }
            Function::MathAdd => {
                let (left, right) = (next(), next());
                let (a, b) = (integer(&left, "first argument")?, integer(&right, "second argument")?);
                Value::from(a.checked_add(b).ok_or("the sum overflows")?)
            }
            Function::StringSplit => {
                let text = bounded_string(next(), "first argument")?;
                let delimiters = string(next(), "delimiter")?;
                let parts = text.split(|c| delimiters.contains(c)).filter(|part| !part.is_empty());
                Value::Array(parts.map(|part| Value::String(part.to_owned())).collect())
            }
            Function::Uuid => {
                let bytes: [u8; 16] = lock(scope.rng).gen();
                Value::String(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string())
            }
        })
    }
}

fn lock(rng: &Mutex<ChaCha8Rng>) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
    // A panic while drawing a number cannot leave the generator inconsistent, so a poisoned lock is still usable.
    rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn evaluate_arg(arg: &Arg, scope: &Scope<'_>) -> Result<Value, Failure> {
    match arg {
        Arg::Text { value, .. } => Ok(Value::String(value.clone())),
        Arg::Literal(value) => Ok(value.clone()),
        Arg::Path(path) => select_from(path, scope.data, scope.context)
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| Failure::runtime(format!("The JSONPath '{path}' could not be found in the input"))),
        Arg::Call(call) => call.evaluate(scope),
    }
}

fn string(value: Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(format!("the {what} must be a string, not {other}")),
    }
}

fn bounded_string(value: Value, what: &str) -> Result<String, String> {
    let text = string(value, what)?;
    if text.chars().count() > MAX_STRING_INPUT {
        return Err(format!("the {what} is longer than {MAX_STRING_INPUT} characters"));
    }
    Ok(text)
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!("the {what} must be an array, not {other}")),
    }
}

fn integer(value: &Value, what: &str) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("the {what} must be an integer, not {n}")),
        other => Err(format!("the {what} must be an integer, not {other}")),
    }
}

fn range(start: i64, end: i64, step: i64) -> Result<Value, String> {
    if step == 0 {
        return Err("the step must not be zero".into());
    }
    let mut items = Vec::new();
    let mut current = start;
    while (step > 0 && current <= end) || (step < 0 && current >= end) {
        if items.len() == MAX_RANGE_ITEMS {
            return Err(format!("the range has more than {MAX_RANGE_ITEMS} items"));
        }
        items.push(Value::Number(Number::from(current)));
        current = match current.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(Value::Array(items))
}

fn hash(algorithm: &str, data: &[u8]) -> Result<String, String> {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    Ok(match algorithm {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        other => {
            return Err(format!(
                "unknown algorithm '{other}': use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"
            ))
        }
    })
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_whitespace();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.skip_whitespace();
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!("intrinsic functions may be nested at most {MAX_NESTING} deep"));
        }
        let Some(after) = self.rest().strip_prefix("States.") else {
            return Err(format!("expected an intrinsic function at '{}'", self.rest()));
        };
        let name_len = after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len());
        let short = &after[..name_len];
        let name = format!("States.{short}");
        let function = Function::from_name(short).ok_or_else(|| format!("unknown intrinsic function '{name}'"))?;
        self.pos += "States.".len() + name_len;
        if !self.eat('(') {
            return Err(format!("expected '(' after {name}"));
        }
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.arg()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(format!(
                        "expected ',' or ')' in the arguments of {name} at '{}'",
                        self.rest()
                    ));
                }
            }
        }
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!("{name} takes {expected} argument(s), not {}", args.len()));
        }
        if let (Function::Format, Some(Arg::Literal(value))) = (function, args.first()) {
            return Err(format!(
                "{name} takes a string template as its first argument, not {value}"
            ));
        }
        // The specification: "This Intrinsic Function takes a single argument which MUST be a Path."
        if function == Function::JsonToString && !matches!(args.first(), Some(Arg::Path(_))) {
            return Err(format!("{name} takes a path (such as $.data), not a literal or a call"));
        }
        self.depth -= 1;
        Ok(Intrinsic { name, function, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_whitespace();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.text_literal();
        }
        if rest.starts_with("States.") {
            return Ok(Arg::Call(Box::new(self.call()?)));
        }
        let end = self.arg_end();
        let token = self.text[self.pos..end].trim();
        if token.is_empty() {
            return Err(format!("missing argument at '{rest}'"));
        }
        self.pos = end;
        if token.starts_with('$') {
            return Path::parse(token, true).map(Arg::Path);
        }
        match serde_json::from_str::<Value>(token) {
            Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal(value)),
            _ => Err(format!(
                "'{token}' is not a valid argument: use a 'string', a number, true, false, null, a path or a function"
            )),
        }
    }

    /// Where an unquoted argument ends: at a `,` or `)` outside brackets and quotes.
    fn arg_end(&self) -> usize {
        let mut depth = 0usize;
        let mut quote = None;
        for (offset, c) in self.rest().char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ')') if depth > 0 => depth -= 1,
                (None, ',' | ')') if depth == 0 => return self.pos + offset,
                _ => {}
            }
        }
        self.text.len()
    }

    fn text_literal(&mut self) -> Result<Arg, String> {
        let body_start = self.pos + 1;
        let mut value = String::new();
        let mut chars = self.text[body_start..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped @ ('\'' | '{' | '}' | '\\'))) => value.push(escaped),
                    Some((_, other)) => return Err(format!("invalid escape '\\{other}' in a string literal")),
                    None => break,
                },
                '\'' => {
                    let raw = self.text[body_start..body_start + offset].to_owned();
                    self.pos = body_start + offset + 1;
                    return Ok(Arg::Text { value, raw });
                }
                c => value.push(c),
            }
        }
        Err("unterminated string literal".into())
    }
}
