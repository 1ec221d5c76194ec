//! Test support: the fake provider, the LSP test client, and the bench most protocol tests share.

pub mod bench;
pub mod client;
pub mod fake;
pub mod redis;
