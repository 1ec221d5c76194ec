//! Syntax trees (tree-sitter) for the languages with a grammar: the trees of open documents,
//! widening by syntax, the definitions a selection uses, and checking the code a model proposes.
//!
//! Protocol-free: everything works on ropes and char offsets. Python, JavaScript (with JSX),
//! TypeScript, TSX, Go and Rust have grammars; for other languages every function here answers
//! `None` and the callers keep their heuristics.

mod blocks;
mod defs;
mod lang;
mod parse;
mod trees;
mod verify;

pub use blocks::{enclosing_block, Block};
pub use defs::{definitions_used, Definition, MAX_DEFINITIONS};
pub use lang::{DefKind, Lang};
pub use parse::{parse, Parsed, MAX_PARSE_BYTES};
pub use trees::{Stamp, Trees};
pub use verify::{verify, Expect, Failure, Verdict};

/// Another document whose definitions a prompt may use: its name and its tree.
#[derive(Clone, Debug)]
pub struct Source {
    /// URI or path, as the privacy rules and the prompt see it.
    pub name: String,
    pub parsed: Parsed,
}

#[cfg(test)]
mod tests;
