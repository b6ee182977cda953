//! The integration tests of this crate, linked as one binary: one module
//! per suite (see each module's first lines for what it proves).

mod accounts;
mod chaos;
mod cli;
mod common;
mod compliance;
mod dashboard;
#[path = "../../src/doc_pages.rs"]
mod doc_pages;
mod docs;
mod docs_run;
mod endpoints;
mod grow;
mod kill;
mod modes;
mod outage;
mod paths;
mod policies;
mod replicas;
mod routing;
mod serve;
mod signers;
mod store_copy;
mod transactions;
mod webhook;
