//! codetier: AI code actions served over LSP and from the command line.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map and invariants.

pub mod action;
pub mod cache;
pub mod cli;
pub mod complete;
pub mod config;
pub mod docs;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod lsp;
pub mod paths;
pub mod prompts;
pub mod provider;
pub mod render;
pub mod router;
pub mod syntax;
pub mod team;
pub mod usage;
