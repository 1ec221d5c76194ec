//! The definitions a selection uses, as a prompt section: what fits of them in the budget,
//! each saying where it came from.

use crate::syntax::Definition;

/// The share of what is left after the selection that definitions may take; the rest goes to
/// the lines around the selection.
pub(crate) const SHARE_DIVISOR: usize = 3;

/// A definition chosen for the prompt: which one, and whether its whole text fits (else its
/// signature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chosen {
    pub index: usize,
    pub full: bool,
}

/// The definitions that fit in `budget` chars, in order: each whole when it fits, else its
/// signature; a definition whose signature does not fit ends the list. Returns them and the
/// chars they take.
pub(crate) fn choose(defs: &[Definition], file_name: &str, budget: usize) -> (Vec<Chosen>, usize) {
    let mut left = budget;
    let mut out = Vec::new();
    for (index, d) in defs.iter().enumerate() {
        let frame = origin(d, file_name).chars().count() + 24;
        let full = d.full.as_ref().map(|f| f.chars().count() + frame);
        let head = d.signature.chars().count() + 2 + frame;
        match full {
            Some(cost) if cost <= left => {
                left -= cost;
                out.push(Chosen { index, full: true });
            }
            _ if head <= left => {
                left -= head;
                out.push(Chosen { index, full: false });
            }
            _ => break,
        }
    }
    (out, budget - left)
}

/// The text of a chosen definition: whole, or its signature followed by `…`.
pub(crate) fn code(d: &Definition, full: bool) -> String {
    match (&d.full, full) {
        (Some(text), true) => text.clone(),
        _ => format!("{} …", d.signature),
    }
}

/// Where a definition is: `function `helper`, from src/util.rs, line 12`.
pub(crate) fn origin(d: &Definition, file_name: &str) -> String {
    let within = d
        .container
        .as_ref()
        .map(|c| format!(" in {c}"))
        .unwrap_or_default();
    let file = d.file.as_deref().unwrap_or(file_name);
    let place = if d.file.is_some() {
        format!("from {file}")
    } else {
        format!("from this file, {file}")
    };
    format!(
        "{} `{}`{within}, {place}, line {}",
        d.label,
        d.name,
        d.line + 1
    )
}

/// One line per definition sent, for the result: `function `helper` (src/util.rs:12)`.
pub(crate) fn note(d: &Definition, file_name: &str) -> String {
    let file = d.file.as_deref().unwrap_or(file_name);
    format!("{} `{}` ({file}:{})", d.label, d.name, d.line + 1)
}
