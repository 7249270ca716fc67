//! Validation errors of rule sets, each anchored at a JSON path.

use std::fmt;

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Where in a JSON document something is, from the root: `$.rules[2].maxDistance`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct JsonPath(Vec<PathSegment>);

impl JsonPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Key(key.to_owned()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Index(index));
        next
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// The same place as an RFC 6901 JSON pointer (`/rules/2/maxDistance`), as HTTP problem bodies use.
    pub fn to_pointer(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                PathSegment::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                PathSegment::Index(i) => format!("/{i}"),
            })
            .collect()
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.0 {
            match s {
                PathSegment::Key(k) if is_identifier(k) => write!(f, ".{k}")?,
                PathSegment::Key(k) => write!(f, "[{}]", serde_json::Value::from(k.as_str()))?,
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One thing wrong with a rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetError {
    /// Where the problem is.
    pub path: JsonPath,
    /// What is wrong, in a sentence a game designer can act on.
    pub message: String,
    /// The 1-based line and column, for syntax errors, where there is no path to point at yet.
    pub position: Option<(usize, usize)>,
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Everything wrong with a rule set, reported at once, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleSetErrors(pub Vec<RuleSetError>);

impl RuleSetErrors {
    pub fn iter(&self) -> impl Iterator<Item = &RuleSetError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for RuleSetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "the rule set has {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_jsonpath_and_as_pointers() {
        let p = JsonPath::root().key("rules").index(2).key("maxDistance");
        assert_eq!(p.to_string(), "$.rules[2].maxDistance");
        assert_eq!(p.to_pointer(), "/rules/2/maxDistance");
        let odd = JsonPath::root().key("perTeam").key("a/b c");
        assert_eq!(odd.to_string(), "$.perTeam[\"a/b c\"]");
        assert_eq!(odd.to_pointer(), "/perTeam/a~1b c");
        assert_eq!(JsonPath::root().to_string(), "$");
    }
}
