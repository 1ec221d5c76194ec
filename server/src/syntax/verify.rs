//! Checking code a model proposes, where it would stand: it must parse there without error or
//! missing nodes, break nothing after it, and (for generated code) define what was asked for.

use std::ops::Range;

use super::defs::index;
use super::parse::{replaced, SyntaxError};
use super::{DefKind, Parsed};

/// What the code must define besides parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Only that it parses (a fix).
    Parses,
    /// A definition of this name (any kind), or, for `None`, some function, method or type.
    Defines(Option<String>),
}

/// Why code failed its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// For people, after "the code …": `did not parse: line 3 (missing `)`)`.
    pub reason: String,
    /// Syntax errors it brought (0 when only the definition is missing).
    pub errors: usize,
    /// It defines what was expected.
    pub defines: bool,
}

impl Failure {
    /// Whether `self` is the better of two failed answers: it defines what was asked, then it
    /// has fewer syntax errors.
    pub fn better_than(&self, other: &Failure) -> bool {
        (self.defines, std::cmp::Reverse(self.errors))
            > (other.defines, std::cmp::Reverse(other.errors))
    }
}

/// The outcome of a check.
pub type Verdict = Result<(), Failure>;

/// Checks `replacement` standing in place of chars `range` of the document `parsed`
/// describes. It fails when a syntax error or missing node touches the replacement, when
/// the document has more errors outside it than before (an unclosed brace breaks what
/// follows), or when `expect` is not met. `None` when the result could not be parsed at all
/// (too large): nothing can be said.
///
/// Errors the document already had elsewhere do not count against the code, and neither do
/// those of the text it replaces (a stub that does not parse yet).
///
/// Remembered per tree: checking the same replacement again on an unchanged document (an
/// answer served from the cache) does not parse it again.
pub fn verify(
    parsed: &Parsed,
    range: Range<usize>,
    replacement: &str,
    expect: &Expect,
) -> Option<Verdict> {
    let mut key = blake3::Hasher::new();
    key.update(b"verify\0");
    key.update(&(range.start as u64).to_le_bytes());
    key.update(&(range.end as u64).to_le_bytes());
    key.update(format!("{expect:?}\0").as_bytes());
    key.update(replacement.as_bytes());
    parsed.memo(key.finalize(), || {
        verify_now(parsed, range, replacement, expect)
    })
}

/// [`verify`] without the memo.
fn verify_now(
    parsed: &Parsed,
    range: Range<usize>,
    replacement: &str,
    expect: &Expect,
) -> Option<Verdict> {
    let old_bytes = parsed.bytes(range.clone());
    let after = replaced(parsed, range, replacement)?;
    let span = old_bytes.start..old_bytes.start + replacement.len();
    let touches =
        |e: &SyntaxError, r: &Range<usize>| e.bytes.start <= r.end && r.start <= e.bytes.end;
    let errors = after.errors(None);
    let (inside, outside): (Vec<&SyntaxError>, Vec<&SyntaxError>) =
        errors.iter().partition(|e| touches(e, &span));
    let before_outside = parsed
        .errors(None)
        .iter()
        .filter(|e| !touches(e, &old_bytes))
        .count();
    let defines = match expect {
        Expect::Parses => true,
        Expect::Defines(name) => defines_check(&after, &span, name.as_deref()).is_ok(),
    };
    let first_line = after.line_of(span.start);
    let describe = |e: &SyntaxError| match e.missing {
        Some(kind) => format!("missing `{}`", short(kind)),
        None => {
            let text = after.slice(e.bytes.clone());
            let token = text.split_whitespace().next().unwrap_or("");
            if token.is_empty() {
                "unexpected end".to_owned()
            } else {
                format!("unexpected `{}`", short(token))
            }
        }
    };
    if let Some(e) = inside.first() {
        let line = after.line_of(e.bytes.start).saturating_sub(first_line) + 1;
        return Some(Err(Failure {
            reason: format!("did not parse: line {line} ({})", describe(e)),
            errors: inside.len() + outside.len().saturating_sub(before_outside),
            defines,
        }));
    }
    if outside.len() > before_outside {
        let e = outside
            .iter()
            .find(|e| e.bytes.start >= span.end)
            .or(outside.first())
            .copied();
        let at = e.map_or(0, |e| after.line_of(e.bytes.start) + 1);
        return Some(Err(Failure {
            reason: format!(
                "did not parse in place: it breaks the code at line {at} of the file ({})",
                e.map(describe).unwrap_or_default()
            ),
            errors: outside.len() - before_outside,
            defines,
        }));
    }
    if let Expect::Defines(name) = expect {
        if let Err(reason) = defines_check(&after, &span, name.as_deref()) {
            return Some(Err(Failure {
                reason,
                errors: 0,
                defines: false,
            }));
        }
    }
    Some(Ok(()))
}

/// Whether the code in `span` defines `name` (or, without one, some function, method or type).
fn defines_check(after: &Parsed, span: &Range<usize>, name: Option<&str>) -> Result<(), String> {
    let entries = index(after);
    let inside: Vec<_> = entries
        .iter()
        .filter(|e| e.bytes.start >= span.start && e.bytes.end <= span.end)
        .collect();
    match name {
        Some(name) if inside.iter().any(|e| e.name == name) => Ok(()),
        Some(name) => {
            let made: Vec<String> = inside
                .iter()
                .filter(|e| e.kind != DefKind::Constant)
                .map(|e| format!("`{}`", e.name))
                .take(3)
                .collect();
            if made.is_empty() {
                Err(format!("does not define `{name}`"))
            } else {
                Err(format!("defines {} instead of `{name}`", made.join(", ")))
            }
        }
        None if inside.iter().any(|e| e.kind != DefKind::Constant) => Ok(()),
        None => Err("defines no function".to_owned()),
    }
}

fn short(s: &str) -> String {
    let s = s.lines().next().unwrap_or("");
    match s.char_indices().nth(24) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}
