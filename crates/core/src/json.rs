//! JSON read strictly: an object that names a key twice is an error, not its last value; and
//! numbers spelt for messages about JSON values.
//!
//! The readers live in `queuematch-json`, shared with the ASL engine, which does not depend on the domain;
//! they are re-exported here for the domain's readers and the adapters that use them.

pub use queuematch_json::{from_slice_unique, from_str_unique, position};

/// `x` as a person reads it in a message: plain decimals in the usual range, else in scientific
/// notation (a rate of `1e-300`, or a limit of `1e300`, is not three hundred digits).
pub fn figure(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (1e-4..1e9).contains(&x.abs()) {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}
