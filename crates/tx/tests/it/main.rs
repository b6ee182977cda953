//! The integration tests of this crate, linked as one binary: one module
//! per suite (see each module's first lines for what it proves).

mod common;
mod endings;
mod endpoints;
#[path = "common/fixture.rs"]
mod fixture;
mod logs;
mod market;
mod poison;
mod refusals;
mod resend;
mod send;
mod simulate;
mod stall;
mod writeahead;
