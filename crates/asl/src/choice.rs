//! Choice rules: parsing every comparison operator, and evaluating rules against a state's input.

use std::cmp::Ordering;

use serde_json::Value;

use crate::clock::parse_timestamp;
use crate::context::ContextObject;
use crate::error::Failure;
use crate::path::Path;
use crate::reader::{Fields, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Equals => ordering == Ordering::Equal,
            Comparison::LessThan => ordering == Ordering::Less,
            Comparison::GreaterThan => ordering == Ordering::Greater,
            Comparison::LessThanEquals => ordering != Ordering::Greater,
            Comparison::GreaterThanEquals => ordering != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Compare {
        kind: Kind,
        comparison: Comparison,
        operand: Operand,
    },
    Matches(Vec<Glob>),
    Is {
        test: TypeTest,
        expected: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    Char(char),
    Star,
}

/// A Boolean expression of a Choice state.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
}

const OPERATORS: &[&str] = &[
    "And",
    "Or",
    "Not",
    "StringEquals",
    "StringEqualsPath",
    "StringLessThan",
    "StringLessThanPath",
    "StringGreaterThan",
    "StringGreaterThanPath",
    "StringLessThanEquals",
    "StringLessThanEqualsPath",
    "StringGreaterThanEquals",
    "StringGreaterThanEqualsPath",
    "StringMatches",
    "NumericEquals",
    "NumericEqualsPath",
    "NumericLessThan",
    "NumericLessThanPath",
    "NumericGreaterThan",
    "NumericGreaterThanPath",
    "NumericLessThanEquals",
    "NumericLessThanEqualsPath",
    "NumericGreaterThanEquals",
    "NumericGreaterThanEqualsPath",
    "BooleanEquals",
    "BooleanEqualsPath",
    "TimestampEquals",
    "TimestampEqualsPath",
    "TimestampLessThan",
    "TimestampLessThanPath",
    "TimestampGreaterThan",
    "TimestampGreaterThanPath",
    "TimestampLessThanEquals",
    "TimestampLessThanEqualsPath",
    "TimestampGreaterThanEquals",
    "TimestampGreaterThanEqualsPath",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

/// Parses one rule. `top_level` rules carry `Next` (read by the caller); nested ones must not.
pub(crate) fn parse_rule(fields: Fields<'_>, top_level: bool, problems: &mut Problems) -> Option<Rule> {
    let mut allowed = vec!["Variable", "Comment"];
    if top_level {
        allowed.push("Next");
    } else if fields.has("Next") {
        fields.problem(problems, "Next", "a rule nested in And, Or or Not must not have 'Next'");
        // Reported just above, with the reason: not again below as an unknown field.
        allowed.push("Next");
    }
    let operators: Vec<&str> = fields
        .map
        .keys()
        .map(String::as_str)
        .filter(|key| OPERATORS.contains(key))
        .collect();
    allowed.extend(operators.iter().copied());
    fields.reject_unknown(&allowed, "a Choice rule", problems);
    let [operator] = operators.as_slice() else {
        let message = if operators.is_empty() {
            "a Choice rule needs exactly one comparison operator (StringEquals, And, IsPresent, …)".to_owned()
        } else {
            format!(
                "a Choice rule has exactly one comparison operator, not {}",
                operators.join(", ")
            )
        };
        problems.push(fields.state, fields.at.to_owned(), message);
        return None;
    };
    let operator = *operator;
    let value = fields.get(operator)?;
    let location = fields.at(operator);
    match operator {
        "And" | "Or" => {
            let items = fields.array(operator, problems)?;
            if items.is_empty() {
                fields.problem(problems, operator, "must list at least one rule");
                return None;
            }
            if fields.has("Variable") {
                fields.problem(
                    problems,
                    "Variable",
                    format!("a rule using '{operator}' must not have 'Variable'"),
                );
            }
            let mut rules = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{location}[{i}]");
                let nested = Fields::new(item, &at, fields.state, problems)?;
                rules.push(parse_rule(nested, false, problems)?);
            }
            Some(if operator == "And" {
                Rule::And(rules)
            } else {
                Rule::Or(rules)
            })
        }
        "Not" => {
            if fields.has("Variable") {
                fields.problem(problems, "Variable", "a rule using 'Not' must not have 'Variable'");
            }
            let nested = Fields::new(value, &location, fields.state, problems)?;
            Some(Rule::Not(Box::new(parse_rule(nested, false, problems)?)))
        }
        _ => {
            let variable = match fields.required_string("Variable", problems) {
                Some(text) => match Path::parse(text, true) {
                    Ok(path) => Some(path),
                    Err(message) => {
                        fields.problem(problems, "Variable", message);
                        None
                    }
                },
                None => None,
            };
            let test = parse_test(operator, value, &location, fields, problems);
            Some(Rule::Test {
                variable: variable?,
                test: test?,
            })
        }
    }
}

fn parse_test(
    operator: &str,
    value: &Value,
    location: &str,
    fields: Fields<'_>,
    problems: &mut Problems,
) -> Option<Test> {
    let mut fail = |message: String| {
        problems.push(fields.state, location.to_owned(), message);
        None
    };
    let type_test = match operator {
        "IsNull" => Some(TypeTest::Null),
        "IsPresent" => Some(TypeTest::Present),
        "IsNumeric" => Some(TypeTest::Numeric),
        "IsString" => Some(TypeTest::String),
        "IsBoolean" => Some(TypeTest::Boolean),
        "IsTimestamp" => Some(TypeTest::Timestamp),
        _ => None,
    };
    if let Some(test) = type_test {
        return match value {
            Value::Bool(expected) => Some(Test::Is {
                test,
                expected: *expected,
            }),
            _ => fail(format!("{operator} takes true or false")),
        };
    }
    if operator == "StringMatches" {
        return match value {
            Value::String(pattern) => Some(Test::Matches(compile_glob(pattern))),
            _ => fail("StringMatches takes a string pattern".into()),
        };
    }
    let (name, by_path) = match operator.strip_suffix("Path") {
        Some(name) => (name, true),
        None => (operator, false),
    };
    let (kind, comparison_name) = if let Some(rest) = name.strip_prefix("String") {
        (Kind::String, rest)
    } else if let Some(rest) = name.strip_prefix("Numeric") {
        (Kind::Numeric, rest)
    } else if let Some(rest) = name.strip_prefix("Boolean") {
        (Kind::Boolean, rest)
    } else if let Some(rest) = name.strip_prefix("Timestamp") {
        (Kind::Timestamp, rest)
    } else {
        return fail(format!("unknown operator '{operator}'"));
    };
    let comparison = match comparison_name {
        "Equals" => Comparison::Equals,
        "LessThan" => Comparison::LessThan,
        "GreaterThan" => Comparison::GreaterThan,
        "LessThanEquals" => Comparison::LessThanEquals,
        "GreaterThanEquals" => Comparison::GreaterThanEquals,
        _ => return fail(format!("unknown operator '{operator}'")),
    };
    let operand = if by_path {
        match value.as_str().map(|text| Path::parse(text, true)) {
            Some(Ok(path)) => Operand::Path(path),
            Some(Err(message)) => return fail(message),
            None => return fail(format!("{operator} takes a path string")),
        }
    } else {
        let fits = match kind {
            Kind::String => value.is_string(),
            Kind::Numeric => value.is_number(),
            Kind::Boolean => value.is_boolean(),
            Kind::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
        };
        if !fits {
            let expected = match kind {
                Kind::String => "a string",
                Kind::Numeric => "a number",
                Kind::Boolean => "true or false",
                Kind::Timestamp => "an RFC 3339 timestamp such as 2016-03-14T01:59:00Z",
            };
            return fail(format!("{operator} takes {expected}"));
        }
        Operand::Literal(value.clone())
    };
    Some(Test::Compare {
        kind,
        comparison,
        operand,
    })
}

/// `*` matches any run of characters; `\*` is a literal star and `\\` a literal backslash.
fn compile_glob(pattern: &str) -> Vec<Glob> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(Glob::Char(chars.next().unwrap_or('\\'))),
            '*' => out.push(Glob::Star),
            c => out.push(Glob::Char(c)),
        }
    }
    out
}

/// Wildcard matching with single-star backtracking: linear in practice, never exponential.
fn glob_matches(pattern: &[Glob], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Glob::Star) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Glob::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|glob| *glob == Glob::Star)
}

fn invalid_path(path: &Path) -> Failure {
    Failure::runtime(format!(
        "Invalid path '{path}': The choice state's condition path references an invalid value."
    ))
}

impl Rule {
    /// Evaluates the rule; a comparison whose variable (or operand path) is missing fails with `States.Runtime`.
    pub(crate) fn evaluate(&self, input: &Value, context: &ContextObject<'_>) -> Result<bool, Failure> {
        match self {
            Rule::And(rules) => {
                for rule in rules {
                    if !rule.evaluate(input, context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for rule in rules {
                    if rule.evaluate(input, context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.evaluate(input, context)?),
            Rule::Test { variable, test } => {
                let value = crate::path::select_from(variable, input, context).ok();
                if let Test::Is {
                    test: TypeTest::Present,
                    expected,
                } = test
                {
                    return Ok(value.is_some() == *expected);
                }
                let value = value.ok_or_else(|| invalid_path(variable))?;
                let value = value.as_ref();
                Ok(match test {
                    Test::Is { test, expected } => {
                        let holds = match test {
                            TypeTest::Null => value.is_null(),
                            TypeTest::Present => true,
                            TypeTest::Numeric => value.is_number(),
                            TypeTest::String => value.is_string(),
                            TypeTest::Boolean => value.is_boolean(),
                            TypeTest::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
                        };
                        holds == *expected
                    }
                    Test::Matches(pattern) => value.as_str().is_some_and(|text| glob_matches(pattern, text)),
                    Test::Compare {
                        kind,
                        comparison,
                        operand,
                    } => {
                        let operand = match operand {
                            Operand::Literal(literal) => std::borrow::Cow::Borrowed(literal),
                            Operand::Path(path) => {
                                crate::path::select_from(path, input, context).map_err(|_| invalid_path(path))?
                            }
                        };
                        compare(*kind, value, &operand).is_some_and(|ordering| comparison.holds(ordering))
                    }
                })
            }
        }
    }
}

/// Orders two values of `kind`; `None` when either is not of that kind, which makes the comparison false.
fn compare(kind: Kind, left: &Value, right: &Value) -> Option<Ordering> {
    match kind {
        // AWS compares strings as Java's compareTo does, by UTF-16 code units: a character beyond the
        // Basic Multilingual Plane (a surrogate pair, 0xD800…) sorts before U+E000…U+FFFF, where code
        // point order puts it after.
        Kind::String => Some(left.as_str()?.encode_utf16().cmp(right.as_str()?.encode_utf16())),
        Kind::Numeric => {
            let (Value::Number(a), Value::Number(b)) = (left, right) else {
                return None;
            };
            match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
            }
        }
        Kind::Boolean => {
            let (a, b) = (left.as_bool()?, right.as_bool()?);
            Some(if a == b { Ordering::Equal } else { a.cmp(&b) })
        }
        Kind::Timestamp => Some(parse_timestamp(left.as_str()?)?.cmp(&parse_timestamp(right.as_str()?)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_compare_by_utf16_code_units_as_java_does() {
        let (emoji, halfwidth) = (Value::from("\u{1F600}"), Value::from("\u{FF61}"));
        assert_eq!(compare(Kind::String, &emoji, &halfwidth), Some(Ordering::Less));
        assert_eq!(
            compare(Kind::String, &Value::from("abc"), &Value::from("abd")),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(Kind::String, &Value::from("b"), &Value::from("ab")),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn globs_honour_escapes() {
        let glob = compile_glob("log-*.txt");
        assert!(glob_matches(&glob, "log-2024.txt"));
        assert!(glob_matches(&glob, "log-.txt"));
        assert!(!glob_matches(&glob, "log-2024.txt.bak"));
        let literal_star = compile_glob("a\\*b*");
        assert!(glob_matches(&literal_star, "a*bcd"));
        assert!(!glob_matches(&literal_star, "axbcd"));
        assert!(glob_matches(&compile_glob("*a*a*a*"), "banana and a"));
    }
}
