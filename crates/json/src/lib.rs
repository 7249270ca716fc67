//! JSON read strictly: an object that names a key twice is an error, not its last value.
//!
//! `serde_json::Value` keeps the last of a key given twice, so a rule set with `"maxDistance"`
//! twice, a ticket with `"queue"` twice, or a workflow definition with two states of one name,
//! would pass with one of them silently dropped, and two readers could disagree on which. These
//! readers refuse it at the second, with serde_json's line and column, as a syntax error.
//!
//! A crate of its own so that the domain (`queuematch-core`) and the ASL engine
//! (`queuematch-asl`), neither of which depends on the other, read JSON the same way.

use serde_json::{Map, Value};

/// Parses `text` as [`serde_json::from_str`] does, refusing a key given twice in one object.
pub fn from_str_unique(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Unique>(text).map(|u| u.0)
}

/// Parses `bytes` as [`serde_json::from_slice`] does, refusing a key given twice in one object.
pub fn from_slice_unique(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unique>(bytes).map(|u| u.0)
}

/// Where in `text` serde_json's `error` is: its line and column, both from 1, the column in bytes;
/// (0, 0) for an error without a position (one from reading a `Value`, which keeps none).
///
/// serde_json gives column 0 when it stopped at the start of a line, which is only ever the end of
/// the text: there the error is put on the last character read (the line break), or on the first
/// column of an empty text.
pub fn position(text: &str, error: &serde_json::Error) -> (usize, usize) {
    let (line, column) = (error.line(), error.column());
    if column > 0 || line == 0 {
        return (line, column);
    }
    match line
        .checked_sub(1)
        .and_then(|previous| text.split('\n').nth(previous.checked_sub(1)?))
    {
        Some(previous_text) => (line - 1, previous_text.len() + 1),
        None => (line.max(1), 1),
    }
}

/// A JSON value whose objects name each key once.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity; serde_json reads an out-of-range number as an error.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{key}` is given twice in one object"
                )));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_an_error_at_the_second() {
        let error = from_str_unique("{\"a\": 1,\n \"a\": 2}").unwrap_err();
        assert_eq!(
            (
                error.line(),
                error.to_string().starts_with("the key `a` is given twice")
            ),
            (2, true)
        );
        assert!(from_slice_unique(b"[{\"a\": {\"b\": 1, \"b\": 1}}]").is_err());
    }

    #[test]
    fn anything_else_reads_as_serde_json_reads_it() {
        let text = r#"{"a": [1, -2, 3.5, "x", true, null, {"a": {}}], "b": {"a": 18446744073709551615}}"#;
        assert_eq!(
            from_str_unique(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(
            from_str_unique("{\"a\": 1e999}").unwrap_err().to_string(),
            serde_json::from_str::<Value>("{\"a\": 1e999}").unwrap_err().to_string()
        );
    }

    #[test]
    fn a_position_is_named_from_one_and_an_error_without_one_stays_without() {
        let at = |text: &str| position(text, &from_str_unique(text).unwrap_err());
        assert_eq!(at("{\"a\": x}"), (1, 7));
        // serde_json says column 0 for these two.
        assert_eq!(at(""), (1, 1));
        assert_eq!(at("[1,\n"), (1, 4), "the line break");
        let from_value = serde_json::from_value::<u8>(Value::from("x")).unwrap_err();
        assert_eq!(position("", &from_value), (0, 0));
    }
}
