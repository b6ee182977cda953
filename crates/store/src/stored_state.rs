//! A transaction request's state as the store keeps it: the JSON of
//! core's `TxState`, which the store writes and reads but never looks
//! inside.

use ethgate_core::tx::TxState;

/// A request's state as the store keeps it: the JSON of core's
/// [`TxState`]. The store never looks inside. A value is made by encoding
/// a state, or read back from a row, and is decoded where it is used, so
/// a row whose state does not decode (damaged, or written by a newer
/// version) is refused on its own instead of failing every read that
/// meets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState(String);

impl StoredState {
    /// A state, encoded to be stored.
    pub fn encode(state: &TxState) -> Result<StoredState, serde_json::Error> {
        serde_json::to_string(state).map(StoredState)
    }

    /// The state a row holds.
    pub fn decode(&self) -> Result<TxState, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The JSON, as written to or read from the database.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// What was read from a row's `state` column.
    pub(crate) fn read(json: String) -> StoredState {
        StoredState(json)
    }
}
