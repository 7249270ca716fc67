//! JSON read strictly: an object that names a key twice is an error, not its last value.
//!
//! The readers live in `queuematch-json`, shared with the ASL engine, which does not depend on the domain;
//! they are re-exported here for the domain's readers and the adapters that use them.

pub use queuematch_json::{from_slice_unique, from_str_unique};
