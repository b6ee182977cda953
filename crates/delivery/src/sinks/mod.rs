//! The sinks. Each is a [`crate::Sink`]; they share the dispatcher and its
//! retry, so a sink only says how to deliver one batch.

pub mod webhook;
