//! Identifiers. Each is a distinct type so a ticket id can never be passed where a player id is due.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Shared rather than owned: the matcher copies every ticket and player id of a pool into its
        /// matches, and cloning a shared string is a reference count, not an allocation. It
        /// serialises as the plain string.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(Arc::from(id.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(Arc::from(id))
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(Arc::from(id))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

id_type!(
    /// A matchmaking ticket: one request, solo or for a whole party.
    TicketId
);
id_type!(
    /// A player: the subject of the caller's JWT. Players never name themselves.
    PlayerId
);
id_type!(
    /// A match formed by the matcher, before and while it is placed.
    MatchId
);

/// The longest id of a ticket, a session or a player the API takes.
const MAX_ID_LEN: usize = 128;

/// Whether `id` is 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_`, `.`, `:`, or one of
/// `also`: the shape of every id the API takes, free of characters that break keys and URLs.
fn is_bounded_id(id: &str, also: &[char]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') || also.contains(&c))
}

/// Ticket ids are opaque but bounded; anything else is refused before it reaches the store.
impl TicketId {
    /// What a ticket id is, as messages say it.
    pub const RULE: &'static str = "a ticket id is 1 to 128 letters, digits, `-`, `_`, `.` or `:`";

    /// Whether `id` is a ticket id (see [`TicketId::RULE`]).
    pub fn is_valid(id: &str) -> bool {
        is_bounded_id(id, &[])
    }
}

/// Session ids are opaque, but bounded: a session id goes into the path of its reports and of its
/// operators' view.
impl SessionId {
    /// What a session id is, as messages say it.
    pub const RULE: &'static str = "a session id is 1 to 128 letters, digits, `-`, `_`, `.` or `:`";

    /// Whether `id` is a session id (see [`SessionId::RULE`]).
    pub fn is_valid(id: &str) -> bool {
        is_bounded_id(id, &[])
    }
}

/// Player ids are opaque, but bounded, and may hold `@` (an email-like subject).
impl PlayerId {
    /// The longest player id the API takes.
    pub const MAX_LEN: usize = MAX_ID_LEN;
    /// What a player id is, as messages say it.
    pub const RULE: &'static str = "a player id is 1 to 128 letters, digits, `-`, `_`, `.`, `@` or `:`";

    /// Whether `id` is a player id the API takes (see [`PlayerId::RULE`]).
    pub fn is_valid(id: &str) -> bool {
        is_bounded_id(id, &['@'])
    }
}
id_type!(
    /// A game session on a dedicated server.
    SessionId
);
