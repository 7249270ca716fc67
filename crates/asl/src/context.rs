//! The context object (`$$`): facts about the execution, the state and the Map item, read by `$$.…` paths.
//!
//! It is never built as one JSON value on the hot path: `$$.Execution.Input` would mean copying the whole
//! execution input for every state (and every item of a Map) that reads the context. A definite path is
//! resolved against the part it names instead, and the small per-state parts are only built when read;
//! only `$$` itself or an indefinite path builds the full object.

use std::borrow::Cow;
use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::clock::format_timestamp;
use crate::path::{walk, NotFound, Path, Step};

/// The state a context object describes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateFacts<'a> {
    pub(crate) name: &'a str,
    pub(crate) entered: DateTime<Utc>,
    pub(crate) retry_count: u32,
}

/// The context object of one state, borrowing the execution-wide parts.
#[derive(Debug)]
pub struct ContextObject<'a> {
    /// `$$.Execution`: Id, Input, Name, RoleArn, StartTime, RedriveCount.
    execution: &'a Value,
    /// `$$.StateMachine`: Id, Name.
    state_machine: &'a Value,
    /// `$$.State`, when there is a state to describe.
    state: Option<StateFacts<'a>>,
    /// `$$.Map.Item`'s index and value, only while an ItemSelector is evaluated.
    item: Option<(usize, &'a Value)>,
    state_value: OnceCell<Value>,
    map_value: OnceCell<Value>,
}

impl<'a> ContextObject<'a> {
    pub(crate) fn new(
        execution: &'a Value,
        state_machine: &'a Value,
        state: Option<StateFacts<'a>>,
        item: Option<(usize, &'a Value)>,
    ) -> Self {
        ContextObject {
            execution,
            state_machine,
            state,
            item,
            state_value: OnceCell::new(),
            map_value: OnceCell::new(),
        }
    }

    fn state_value(&self) -> Option<&Value> {
        let facts = self.state?;
        Some(self.state_value.get_or_init(|| {
            json!({"EnteredTime": format_timestamp(facts.entered), "Name": facts.name, "RetryCount": facts.retry_count})
        }))
    }

    fn map_value(&self) -> Option<&Value> {
        let (index, value) = self.item?;
        Some(
            self.map_value
                .get_or_init(|| json!({"Item": {"Index": index, "Value": value}})),
        )
    }

    pub(crate) fn select(&self, path: &Path) -> Result<Cow<'_, Value>, NotFound> {
        if path.is_definite() {
            let steps = path.steps();
            // `$$.Map.Item.Value…` is read for every Map item: walk the item itself rather than a copy of it.
            if let ([Step::Field(map), Step::Field(item), Step::Field(value), rest @ ..], Some((_, item_value))) =
                (steps, self.item)
            {
                if map == "Map" && item == "Item" && value == "Value" {
                    return walk(item_value, rest).map(Cow::Borrowed).ok_or(NotFound);
                }
            }
            if let Some((Step::Field(name), rest)) = steps.split_first() {
                let part = match name.as_str() {
                    "Execution" => Some(self.execution),
                    "StateMachine" => Some(self.state_machine),
                    "State" => self.state_value(),
                    "Map" => self.map_value(),
                    _ => None,
                };
                return part
                    .and_then(|part| walk(part, rest))
                    .map(Cow::Borrowed)
                    .ok_or(NotFound);
            }
        }
        path.select(&self.to_value())
            .map(|selected| Cow::Owned(selected.into_owned()))
    }

    /// The whole object, as `$$` shows it.
    pub(crate) fn to_value(&self) -> Value {
        let mut value = json!({"Execution": self.execution, "StateMachine": self.state_machine});
        if let Some(state) = self.state_value() {
            value["State"] = state.clone();
        }
        if let Some(map) = self.map_value() {
            value["Map"] = map.clone();
        }
        value
    }
}
