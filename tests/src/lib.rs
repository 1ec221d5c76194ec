//! Test support: the fake provider and the LSP test client.

pub mod client;
pub mod fake;
