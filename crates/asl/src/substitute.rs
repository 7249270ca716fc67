//! SAM-style `DefinitionSubstitutions`: `${Name}` placeholders replaced in the definition's text.
//!
//! SAM substitutes textually, before the definition is parsed, so a placeholder may stand for a string inside
//! quotes (`"Resource": "${PlaceFunctionArn}"`) or for a whole value (`"TimeoutSeconds": ${Timeout}`). The same
//! file then deploys with SAM and runs locally with the local values. An unknown placeholder is an error rather
//! than being left in place, since it would otherwise surface later as a baffling ARN.

use std::collections::HashMap;

use crate::error::DefinitionError;

/// Replaces every `${Name}` in `text` with its value from `substitutions`.
pub fn substitute(text: &str, substitutions: &HashMap<String, String>) -> Result<String, DefinitionError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut unknown = Vec::new();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(DefinitionError::Substitution(
                "a '${' placeholder is not closed with '}'".into(),
            ));
        };
        let name = &after[..end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(DefinitionError::Substitution(format!(
                "'${{{name}}}' is not a valid placeholder name"
            )));
        }
        match substitutions.get(name) {
            Some(value) => out.push_str(value),
            None => unknown.push(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(DefinitionError::Substitution(format!(
            "no value given for {}: pass --sub NAME=VALUE",
            unknown
                .iter()
                .map(|name| format!("${{{name}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_textually() {
        let subs = HashMap::from([
            ("Fn".to_owned(), "arn:aws:lambda:local:0:function:place".to_owned()),
            ("T".to_owned(), "30".to_owned()),
        ]);
        let out = substitute(r#"{"Resource": "${Fn}", "TimeoutSeconds": ${T}}"#, &subs).unwrap();
        assert_eq!(
            out,
            r#"{"Resource": "arn:aws:lambda:local:0:function:place", "TimeoutSeconds": 30}"#
        );
    }

    #[test]
    fn unknown_placeholders_are_errors() {
        let error = substitute(r#"{"a": "${Missing}"}"#, &HashMap::new()).unwrap_err();
        assert!(error.to_string().contains("${Missing}"), "{error}");
    }
}
