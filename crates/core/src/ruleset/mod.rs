//! Rule sets: the declarative language game designers write matches in.
//!
//! Names follow FlexMatch's rule language so that its users feel at home. A rule set is JSON; it is
//! read by [`RuleSet::from_json_str`], which reports every problem at once, each with its JSON path.
//! The typed model below only ever holds a rule set that passed validation.

mod error;
mod model;
mod parse;

pub use error::{JsonPath, PathSegment, RuleSetError, RuleSetErrors};
pub use model::*;

#[cfg(test)]
mod tests;
