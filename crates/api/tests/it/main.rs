//! The integration tests of this crate, linked as one binary: one module
//! per suite (see each module's first lines for what it proves).

mod api;
mod calls;
mod common;
mod hold;
