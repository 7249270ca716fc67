//! Player attributes: the four value types of the rule language.
//!
//! On the wire an attribute is plain JSON (`1500`, `"ranked"`, `["tank"]`, `{"eu": 1}`); its type is
//! the one the rule set declares, so a value is always read against its declared [`AttributeType`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The declared type of a player attribute, named as in FlexMatch's rule language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    Number,
    String,
    StringList,
    StringNumberMap,
}

impl AttributeType {
    pub const ALL: [AttributeType; 4] = [
        AttributeType::Number,
        AttributeType::String,
        AttributeType::StringList,
        AttributeType::StringNumberMap,
    ];

    /// The name used in rule sets (`"string_list"`).
    pub fn name(self) -> &'static str {
        match self {
            AttributeType::Number => "number",
            AttributeType::String => "string",
            AttributeType::StringList => "string_list",
            AttributeType::StringNumberMap => "string_number_map",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What a JSON value of this type looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            AttributeType::Number => "a number",
            AttributeType::String => "a string",
            AttributeType::StringList => "an array of strings",
            AttributeType::StringNumberMap => "an object whose values are numbers",
        }
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A player attribute's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Number(f64),
    String(String),
    StringList(Vec<String>),
    StringNumberMap(BTreeMap<String, f64>),
}

impl AttributeValue {
    pub fn kind(&self) -> AttributeType {
        match self {
            AttributeValue::Number(_) => AttributeType::Number,
            AttributeValue::String(_) => AttributeType::String,
            AttributeValue::StringList(_) => AttributeType::StringList,
            AttributeValue::StringNumberMap(_) => AttributeType::StringNumberMap,
        }
    }

    /// Reads `json` as a value of the declared type `kind`.
    ///
    /// Non-finite numbers cannot occur in JSON, so every `Number` read here is finite.
    pub fn from_json(json: &serde_json::Value, kind: AttributeType) -> Result<Self, AttributeTypeError> {
        use serde_json::Value;
        let mismatch = || AttributeTypeError { expected: kind };
        match (kind, json) {
            (AttributeType::Number, Value::Number(n)) => n.as_f64().map(AttributeValue::Number).ok_or_else(mismatch),
            (AttributeType::String, Value::String(s)) => Ok(AttributeValue::String(s.clone())),
            (AttributeType::StringList, Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(AttributeValue::StringList)
                .ok_or_else(mismatch),
            (AttributeType::StringNumberMap, Value::Object(map)) => map
                .iter()
                .map(|(k, v)| v.as_f64().map(|n| (k.clone(), n)))
                .collect::<Option<BTreeMap<_, _>>>()
                .map(AttributeValue::StringNumberMap)
                .ok_or_else(mismatch),
            _ => Err(mismatch()),
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            AttributeValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_string_list(&self) -> Option<&[String]> {
        match self {
            AttributeValue::StringList(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_string_number_map(&self) -> Option<&BTreeMap<String, f64>> {
        match self {
            AttributeValue::StringNumberMap(map) => Some(map),
            _ => None,
        }
    }
}

/// A JSON value that is not of the attribute's declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {}", expected.expected())]
pub struct AttributeTypeError {
    pub expected: AttributeType,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_reads_its_own_json_shape() {
        assert_eq!(
            AttributeValue::from_json(&json!(1500), AttributeType::Number),
            Ok(AttributeValue::Number(1500.0))
        );
        assert_eq!(
            AttributeValue::from_json(&json!("ranked"), AttributeType::String),
            Ok(AttributeValue::String("ranked".into()))
        );
        assert_eq!(
            AttributeValue::from_json(&json!(["tank", "dps"]), AttributeType::StringList),
            Ok(AttributeValue::StringList(vec!["tank".into(), "dps".into()]))
        );
        assert_eq!(
            AttributeValue::from_json(&json!({"eu": 1.5}), AttributeType::StringNumberMap),
            Ok(AttributeValue::StringNumberMap(BTreeMap::from([("eu".into(), 1.5)])))
        );
    }

    #[test]
    fn a_value_of_another_type_is_refused_with_what_was_expected() {
        let err = AttributeValue::from_json(&json!("1500"), AttributeType::Number).unwrap_err();
        assert_eq!(err.to_string(), "expected a number");
        assert!(AttributeValue::from_json(&json!(["a", 1]), AttributeType::StringList).is_err());
        assert!(AttributeValue::from_json(&json!({"a": "b"}), AttributeType::StringNumberMap).is_err());
    }

    #[test]
    fn type_names_round_trip() {
        for t in AttributeType::ALL {
            assert_eq!(AttributeType::from_name(t.name()), Some(t));
        }
        assert_eq!(AttributeType::from_name("integer"), None);
    }
}
