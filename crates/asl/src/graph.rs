//! A state machine as a graph: its states as nodes and its transitions as edges, for drawing.
//!
//! Edges are what the definition says a state may go to: `Next`, each `Choices` rule's `Next`, a
//! Choice's `Default`, and each `Catch`'s `Next`. A state with `"End": true` (or a Succeed or Fail)
//! has no outgoing edge and is marked as an end. Only the top level is drawn: the states inside a
//! Parallel branch or a Map's item processor run inside their one node.

use serde::Serialize;

use crate::definition::{Body, StateMachine, Transition};

/// How one state may lead to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EdgeKind {
    /// The state's `Next`.
    Next,
    /// A `Choices` rule's `Next`.
    Choice,
    /// A Choice's `Default`.
    Default,
    /// A `Catch`'s `Next`: where an error the state caught goes.
    Catch,
}

/// A state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    /// The ASL `Type`: `Task`, `Choice`, `Wait`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether an execution can end here (`End`, Succeed, Fail).
    pub end: bool,
}

/// A transition, by state name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

/// The top level of a state machine. Nodes are sorted by name and edges by (from, to, kind), so the
/// graph is the same whatever order the definition's JSON object was read in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateGraph {
    pub start_at: String,
    pub nodes: Vec<Node>,
    /// Each distinct (from, to, kind) once.
    pub edges: Vec<Edge>,
}

impl StateMachine {
    /// The machine's top-level states and transitions (see the module's docs).
    pub fn graph(&self) -> StateGraph {
        let states = &self.program.states;
        let name = |i: usize| states[i].name.clone();
        let mut edges: Vec<Edge> = Vec::new();
        let mut add = |from: &str, to: usize, kind: EdgeKind| {
            let edge = Edge {
                from: from.to_owned(),
                to: name(to),
                kind,
            };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        };
        let mut nodes = Vec::with_capacity(states.len());
        for state in states {
            if let Transition::Next(next) = state.transition {
                add(&state.name, next, EdgeKind::Next);
            }
            let catchers = match &state.body {
                Body::Choice { choices, default } => {
                    for (_, next) in choices {
                        add(&state.name, *next, EdgeKind::Choice);
                    }
                    if let Some(default) = default {
                        add(&state.name, *default, EdgeKind::Default);
                    }
                    &[][..]
                }
                Body::Task { handling, .. } | Body::Parallel { handling, .. } | Body::Map { handling, .. } => {
                    &handling.catch[..]
                }
                _ => &[][..],
            };
            for catcher in catchers {
                add(&state.name, catcher.next, EdgeKind::Catch);
            }
            let ends = matches!(state.body, Body::Succeed | Body::Fail { .. })
                || (state.transition == Transition::End && !matches!(state.body, Body::Choice { .. }));
            nodes.push(Node {
                name: state.name.clone(),
                kind: state.type_name(),
                end: ends,
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        edges.sort_by(|a, b| (&a.from, &a.to, a.kind).cmp(&(&b.from, &b.to, b.kind)));
        StateGraph {
            start_at: name(self.program.start),
            nodes,
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edge(from: &str, to: &str, kind: EdgeKind) -> Edge {
        Edge {
            from: from.into(),
            to: to.into(),
            kind,
        }
    }

    #[test]
    fn every_kind_of_transition_is_an_edge_and_ends_are_marked() {
        // GIVEN a machine with a Choice (rule and default), a Task with a Catch, a Wait loop and ends
        let machine = StateMachine::from_value(&json!({
            "StartAt": "Decide",
            "States": {
                "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "Work"}],
                           "Default": "Pause"},
                "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Decide"},
                "Work": {"Type": "Task", "Resource": "arn:aws:lambda:local:0:function:f",
                         "Catch": [{"ErrorEquals": ["Other"], "Next": "Broken"},
                                   {"ErrorEquals": ["States.ALL"], "Next": "Broken"}],
                         "End": true},
                "Broken": {"Type": "Fail", "Error": "Broken"}
            }
        }))
        .unwrap();
        // WHEN it is drawn
        let graph = machine.graph();
        // THEN every transition is an edge, once, and each node knows its type and whether it ends
        assert_eq!(graph.start_at, "Decide");
        assert_eq!(
            graph.edges,
            vec![
                edge("Decide", "Pause", EdgeKind::Default),
                edge("Decide", "Work", EdgeKind::Choice),
                edge("Pause", "Decide", EdgeKind::Next),
                edge("Work", "Broken", EdgeKind::Catch),
            ]
        );
        let summary: Vec<(&str, &str, bool)> = graph.nodes.iter().map(|n| (n.name.as_str(), n.kind, n.end)).collect();
        assert_eq!(
            summary,
            vec![
                ("Broken", "Fail", true),
                ("Decide", "Choice", false),
                ("Pause", "Wait", false),
                ("Work", "Task", true),
            ]
        );
    }

    #[test]
    fn the_graph_serialises_with_asl_names() {
        let machine =
            StateMachine::from_value(&json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})).unwrap();
        assert_eq!(
            serde_json::to_value(machine.graph()).unwrap(),
            json!({"startAt": "Done", "nodes": [{"name": "Done", "type": "Succeed", "end": true}], "edges": []})
        );
    }
}
