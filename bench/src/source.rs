//! Benchmark inputs: Rust-like source of a given size, and random typing on it that stays in bounds.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One generated function, about 560 bytes in 14 lines; `{n}` makes every copy distinct.
const FUNCTION: &str = "/// Sums the weights of the items that pass the filter number {n}.
pub fn weigh_{n}(items: &[Item], limit: usize) -> Result<u64, Error> {
    let mut total: u64 = 0;
    for (i, item) in items.iter().enumerate() {
        if i >= limit || !item.enabled {
            continue;
        }
        // The weight is checked so a corrupt item cannot overflow the sum.
        let weight = item.weight.checked_mul({n}).ok_or(Error::Overflow(i))?;
        total = total.checked_add(weight).ok_or(Error::Overflow(i))?;
    }
    tracing::debug!(total, limit, \"weighed {n} items\");
    Ok(total)
}

";

/// Lines of one generated function, the blank line after it included: function `i` of
/// [`rust_source`] starts on line `i * FUNCTION_LINES`.
pub const FUNCTION_LINES: usize = newlines(FUNCTION);
/// At most the bytes of one generated function: `rust_source(k * FUNCTION_BYTES)` holds at least `k`.
pub const FUNCTION_BYTES: usize = FUNCTION.len();

const fn newlines(s: &str) -> usize {
    let (bytes, mut i, mut n) = (s.as_bytes(), 0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Source text of at least `bytes` bytes (whole functions), ASCII only.
pub fn rust_source(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + FUNCTION.len() * 2);
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&FUNCTION.replace("{n}", &n.to_string()));
        n += 1;
    }
    text
}

/// Replace columns `start..end` of `line` with `text` (ASCII, so utf-16 columns are bytes).
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    pub line: u32,
    pub start: u32,
    pub end: u32,
    pub text: &'static str,
}

impl Edit {
    /// As one `contentChanges` entry of `textDocument/didChange`.
    pub fn to_lsp(self) -> Value {
        json!({
            "range": {
                "start": { "line": self.line, "character": self.start },
                "end": { "line": self.line, "character": self.end },
            },
            "text": self.text,
        })
    }
}

/// Random single-character typing and deleting on a document. Keeps each line's length so
/// every edit stays inside its line.
pub struct Typist {
    lines: Vec<u32>,
    rng: StdRng,
}

impl Typist {
    pub fn new(text: &str, seed: u64) -> Typist {
        Typist {
            lines: text.lines().map(|l| l.len() as u32).collect(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The next edit: insert one letter, or delete one character, on a random non-empty line.
    pub fn next_edit(&mut self) -> Edit {
        loop {
            let line = self.rng.random_range(0..self.lines.len());
            let len = self.lines[line];
            if len < 2 {
                continue;
            }
            let col = self.rng.random_range(0..len - 1);
            let delete = len > 20 && self.rng.random_bool(0.5);
            return if delete {
                self.lines[line] -= 1;
                Edit {
                    line: line as u32,
                    start: col,
                    end: col + 1,
                    text: "",
                }
            } else {
                self.lines[line] += 1;
                Edit {
                    line: line as u32,
                    start: col,
                    end: col,
                    text: "x",
                }
            };
        }
    }

    /// A random line number.
    pub fn random_line(&mut self) -> u32 {
        self.rng.random_range(0..self.lines.len()) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_has_the_size_asked_for_and_edits_stay_in_their_line() {
        let text = rust_source(100_000);
        assert!(
            text.len() >= 100_000 && text.len() < 101_000,
            "{}",
            text.len()
        );
        assert!(text.is_ascii());
        let mut typist = Typist::new(&text, 7);
        for _ in 0..1000 {
            let edit = typist.next_edit();
            assert!(edit.start <= edit.end);
            assert!(edit.end <= typist.lines[edit.line as usize] + 1);
        }
    }
}
