//! Finds where in a JSON text a [`JsonPath`] points, so errors can be shown in their context.

use jsonc_parser::ast::{ObjectPropName, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};
use queuematch_core::ruleset::{JsonPath, PathSegment};
use std::ops::Range;

/// The byte range `path` points at in `text`.
///
/// A path to an object member points at the whole member (`"key": value`), so an unknown field is
/// underlined with its name. A multi-line object or array is shown by its first line only. A path
/// that leads nowhere (a missing field) points at the nearest thing that exists.
pub fn locate(text: &str, path: &JsonPath) -> Option<Range<usize>> {
    let parsed = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default()).ok()?;
    let mut node = parsed.value?;
    let mut span = node.range();
    for segment in path.segments() {
        let next = match (node, segment) {
            (Value::Object(object), PathSegment::Key(key)) => object.properties.into_iter().find_map(|p| {
                let name = match &p.name {
                    ObjectPropName::String(s) => s.value.as_ref() == key,
                    ObjectPropName::Word(w) => w.value == key,
                };
                name.then_some((p.range, p.value))
            }),
            (Value::Array(array), PathSegment::Index(i)) => array.elements.into_iter().nth(*i).map(|v| (v.range(), v)),
            _ => None,
        };
        let Some((range, value)) = next else { break };
        span = range;
        node = value;
    }
    let end = text[span.start..span.end]
        .find('\n')
        .map_or(span.end, |nl| span.start + nl);
    Some(span.start..end.max(span.start + 1).min(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"rules\": [\n    {\"name\": \"fair\", \"maxDistance\": -5}\n  ]\n}";

    fn at(path: JsonPath) -> &'static str {
        let range = locate(TEXT, &path).unwrap();
        &TEXT[range]
    }

    #[test]
    fn a_member_path_points_at_the_member() {
        assert_eq!(
            at(JsonPath::root().key("rules").index(0).key("maxDistance")),
            "\"maxDistance\": -5"
        );
    }

    #[test]
    fn a_multi_line_node_is_shown_by_its_first_line() {
        assert_eq!(at(JsonPath::root().key("rules")), "\"rules\": [");
    }

    #[test]
    fn a_missing_member_points_at_its_parent() {
        assert_eq!(
            at(JsonPath::root().key("rules").index(0).key("type")),
            "{\"name\": \"fair\", \"maxDistance\": -5}"
        );
    }
}
