//! Secrets in document coordinates: the lines a prompt shows are scanned whole (extended over
//! multi-line blocks such as PEM keys), and every piece sent is masked where it overlaps one.
//!
//! Scanning only the text that is sent would miss a secret the selection cuts (the tail of a
//! token, the value of `password = "…"` without its name); scanning the whole document would
//! cost a megabyte per request. So the secrets are found on the whole lines the prompt touches
//! and then every piece — selection rows, the exactly selected text, context rows, enclosing
//! headers — is masked where it overlaps one, however it cuts it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use ropey::{Rope, RopeSlice};

use super::redact::{self, Secret};

/// Chars scanned past the part of a line that is shown: enough to see where a token that starts
/// in the shown part ends (the longest shape, a bearer token, is 4096 chars).
const SCAN_MARGIN: usize = 4096;
/// How far from the shown lines a PEM block's `BEGIN` / `END` line is looked for: an 8192-bit
/// RSA key is about 100 lines of base64.
const PEM_LINES: usize = 160;
/// Chars of a line looked at for a PEM marker.
const MARKER_CHARS: usize = 512;
/// Diagnostics are checked for this many consecutive chars of a known secret.
const QUOTE_CHARS: usize = 8;
/// Secrets shorter than this are not looked for in diagnostics (they would match ordinary words).
const MIN_QUOTED_SECRET: usize = 4;

/// A secret in the document: a char range and its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DocSecret {
    pub range: Range<usize>,
    pub kind: &'static str,
}

/// Finds the secrets on the lines `shown` lists: `(line, chars)` pairs, the 0-based line and
/// how many of its chars are shown (a context row is cut, a selection row is not). Each run of
/// consecutive lines is scanned as one text, so a secret spanning lines is found whole; a run
/// is extended to the `BEGIN` or `END` line of a PEM block it lies in. Long lines are scanned
/// up to [`SCAN_MARGIN`] chars past their shown part. Returns sorted, disjoint char ranges.
pub(crate) fn scan(text: &Rope, shown: &[(usize, usize)]) -> Vec<DocSecret> {
    let lines = text.len_lines();
    let mut shown: Vec<(usize, usize)> =
        shown.iter().copied().filter(|(l, _)| *l < lines).collect();
    shown.sort_unstable();
    // One entry per line, the most chars shown of it.
    let mut wanted: Vec<(usize, usize)> = Vec::with_capacity(shown.len());
    for (line, chars) in shown {
        match wanted.last_mut() {
            Some((l, c)) if *l == line => *c = (*c).max(chars),
            _ => wanted.push((line, chars)),
        }
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (line, _) in &wanted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == *line => *last = *line,
            _ => runs.push((*line, *line)),
        }
    }
    let mut extended: Vec<(usize, usize)> = runs.iter().map(|r| pem_extend(text, *r)).collect();
    extended.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(extended.len());
    for (a, b) in extended {
        match merged.last_mut() {
            Some((_, last)) if a <= *last + 1 => *last = (*last).max(b),
            _ => merged.push((a, b)),
        }
    }
    let shown_of = |line: usize| {
        wanted
            .binary_search_by_key(&line, |(l, _)| *l)
            .map_or(0, |i| wanted[i].1)
    };
    let mut out = Vec::new();
    for (a, b) in merged {
        let window = Window::build(text, a, b, shown_of);
        for secret in redact::find(&window.text) {
            let range = window.doc_char(secret.range.start)..window.doc_char(secret.range.end);
            if !range.is_empty() {
                out.push(DocSecret {
                    range,
                    kind: secret.kind,
                });
            }
        }
    }
    out.sort_by_key(|s| (s.range.start, std::cmp::Reverse(s.range.end)));
    let mut disjoint: Vec<DocSecret> = Vec::with_capacity(out.len());
    for s in out {
        match disjoint.last_mut() {
            Some(last) if s.range.start < last.range.end => {
                last.range.end = last.range.end.max(s.range.end);
            }
            _ => disjoint.push(s),
        }
    }
    disjoint
}

/// Masks the pieces of one prompt and counts the distinct secrets masked.
pub(crate) struct Masker<'a> {
    text: &'a Rope,
    secrets: Vec<DocSecret>,
    /// The texts of `secrets`, for finding them quoted in diagnostics.
    secret_texts: Vec<String>,
    used: Vec<bool>,
    /// Secrets found only inside a piece (not on the document's lines), by their text.
    extra: BTreeSet<String>,
    on: bool,
}

impl<'a> Masker<'a> {
    /// A masker over `secrets` (from [`scan`]); with `on` false every piece comes back as it is.
    pub fn new(text: &'a Rope, secrets: Vec<DocSecret>, on: bool) -> Masker<'a> {
        let secret_texts = secrets
            .iter()
            .map(|s| text.slice(s.range.clone()).to_string())
            .collect();
        Masker {
            text,
            used: vec![false; secrets.len()],
            secrets,
            secret_texts,
            extra: BTreeSet::new(),
            on,
        }
    }

    /// The document text in `range` (chars), masked where it overlaps a secret of the document
    /// or holds one of its own.
    pub fn piece(&mut self, range: Range<usize>) -> String {
        let range = range.start.min(self.text.len_chars())..range.end.min(self.text.len_chars());
        let raw = self.text.slice(range.clone()).to_string();
        if !self.on || raw.is_empty() {
            return raw;
        }
        let first = self.secrets.partition_point(|s| s.range.end <= range.start);
        let mut spans = Vec::new();
        let mut from_document = Vec::new();
        for (i, s) in self.secrets.iter().enumerate().skip(first) {
            if s.range.start >= range.end {
                break;
            }
            self.used[i] = true;
            let start = s.range.start.max(range.start) - range.start;
            let end = s.range.end.min(range.end) - range.start;
            from_document.push(start..end);
            spans.push((start, end, s.kind));
        }
        let mut offsets: Vec<usize> = Vec::new();
        let char_at = |offsets: &mut Vec<usize>, byte: usize| {
            if offsets.is_empty() {
                offsets.extend(raw.char_indices().map(|(b, _)| b));
            }
            offsets.partition_point(|b| *b < byte)
        };
        for s in redact::find(&raw) {
            let (start, end) = (
                char_at(&mut offsets, s.range.start),
                char_at(&mut offsets, s.range.end),
            );
            if !from_document.iter().any(|d| d.start < end && start < d.end) {
                self.extra.insert(raw[s.range.clone()].to_owned());
            }
            spans.push((start, end, s.kind));
        }
        render(&raw, spans)
    }

    /// Text that does not come from the document (another tool's diagnostic), masked where it
    /// holds a secret of its own or quotes at least [`QUOTE_CHARS`] consecutive chars of a
    /// secret of the document (a whole short one).
    pub fn other(&mut self, s: &str) -> String {
        if !self.on || s.is_empty() {
            return s.to_owned();
        }
        let chars: Vec<char> = s.chars().collect();
        let mut hit = vec![false; chars.len()];
        // Every window of QUOTE_CHARS chars of every secret (a shorter secret whole), looked up
        // while sliding over the text once per window length: linear in what is compared.
        let mut windows: HashMap<usize, HashMap<&[char], usize>> = HashMap::new();
        let needles: Vec<Vec<char>> = self
            .secret_texts
            .iter()
            .map(|t| t.chars().collect())
            .collect();
        for (i, needle) in needles.iter().enumerate() {
            if needle.len() < MIN_QUOTED_SECRET {
                continue;
            }
            let w = QUOTE_CHARS.min(needle.len());
            let of_len = windows.entry(w).or_default();
            for window in needle.windows(w) {
                of_len.entry(window).or_insert(i);
            }
        }
        for (w, of_len) in &windows {
            for at in 0..(chars.len() + 1).saturating_sub(*w) {
                if let Some(i) = of_len.get(&chars[at..at + w]) {
                    hit[at..at + w].iter_mut().for_each(|h| *h = true);
                    self.used[*i] = true;
                }
            }
        }
        let mut spans = Vec::new();
        let mut k = 0;
        while k < hit.len() {
            if hit[k] {
                let start = k;
                while k < hit.len() && hit[k] {
                    k += 1;
                }
                spans.push((start, k, "secret"));
            } else {
                k += 1;
            }
        }
        let offsets: Vec<usize> = s.char_indices().map(|(b, _)| b).collect();
        let char_at = |byte: usize| offsets.partition_point(|b| *b < byte);
        for found in redact::find(s) {
            let (start, end) = (char_at(found.range.start), char_at(found.range.end));
            if !spans.iter().any(|(a, b, _)| *a < end && start < *b) {
                self.extra.insert(s[found.range.clone()].to_owned());
            }
            spans.push((start, end, found.kind));
        }
        render(s, spans)
    }

    /// How many distinct secrets were masked in the pieces so far.
    pub fn count(&self) -> usize {
        self.used.iter().filter(|u| **u).count() + self.extra.len()
    }
}

/// `raw` with the char ranges of `spans` (any order, may overlap) replaced by markers.
fn render(raw: &str, spans: Vec<(usize, usize, &'static str)>) -> String {
    if spans.is_empty() {
        return raw.to_owned();
    }
    let offsets: Vec<usize> = raw
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(raw.len()))
        .collect();
    let byte = |c: usize| offsets[c.min(offsets.len() - 1)];
    let secrets: Vec<Secret> = spans
        .into_iter()
        .filter(|(a, b, _)| a < b)
        .map(|(a, b, kind)| Secret {
            range: byte(a)..byte(b),
            kind,
        })
        .collect();
    redact::mask(raw, &redact::merge(secrets))
}

/// Lines `first..=last`, extended to the `BEGIN` line of a PEM private key block they lie in,
/// and to the `END` line of one they open.
fn pem_extend(text: &Rope, (first, last): (usize, usize)) -> (usize, usize) {
    // Walked with line iterators: a lookup by line number is a walk down the rope each.
    let lines = text.len_lines();
    let start = first;
    let mut first = first;
    let mut above = text.lines_at(start);
    for line in (start.saturating_sub(PEM_LINES)..start).rev() {
        let Some(slice) = above.prev() else { break };
        match marker(slice) {
            Some(Marker::End) => break,
            Some(Marker::Begin) => {
                first = line;
                break;
            }
            None => {}
        }
    }
    let mut open = false;
    for slice in text.lines_at(first).take((last + 1).saturating_sub(first)) {
        match marker(slice) {
            Some(Marker::Begin) => open = true,
            Some(Marker::End) => open = false,
            None => {}
        }
    }
    let mut last = last;
    if open {
        let below =
            (last + 1..lines.min(last + 1 + PEM_LINES)).zip(text.lines_at((last + 1).min(lines)));
        for (line, slice) in below {
            if marker(slice) == Some(Marker::End) {
                last = line;
                break;
            }
        }
    }
    (first, last)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    /// A private key block starts on this line and does not end on it.
    Begin,
    /// A block ends on this line.
    End,
}

/// What `line` (one line of the document) marks.
fn marker(line: RopeSlice) -> Option<Marker> {
    let slice = line.slice(..line.len_chars().min(MARKER_CHARS));
    // Looked at for up to [`PEM_LINES`] lines around every run: borrowed where the rope holds
    // the line in one chunk (nearly always), copied only where it does not.
    let head: Cow<str> = match slice.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(slice.to_string()),
    };
    // Nearly no line holds five dashes in a row: only those that do are searched for a marker.
    let bytes = head.as_bytes();
    if !bytes.contains(&b'-') || !bytes.windows(5).any(|w| w == b"-----") {
        return None;
    }
    let begin = head
        .find("-----BEGIN ")
        .filter(|at| head[*at..].contains("PRIVATE KEY"));
    let end = head.rfind("-----END ");
    match (begin, end) {
        (Some(b), Some(e)) if e > b => Some(Marker::End),
        (Some(_), _) => Some(Marker::Begin),
        (None, Some(_)) => Some(Marker::End),
        (None, None) => None,
    }
}

/// The text of lines `first..=last` as scanned, and how its bytes map back to document chars.
struct Window {
    text: String,
    /// `(byte in text, document char, chars)` for each piece of a line copied into `text`.
    segments: Vec<(usize, usize, usize)>,
}

impl Window {
    fn build(text: &Rope, first: usize, last: usize, shown: impl Fn(usize) -> usize) -> Window {
        let mut out = Window {
            text: String::new(),
            segments: Vec::new(),
        };
        for line in first..=last {
            let slice = text.line(line);
            let len = slice.len_chars();
            let take = len.min(shown(line).saturating_add(SCAN_MARGIN));
            out.segments
                .push((out.text.len(), text.line_to_char(line), take));
            out.text.extend(slice.slice(..take).chars());
            if take < len {
                // A separator that is not in the document, so a cut line does not run into the next.
                out.text.push('\n');
            }
        }
        out
    }

    /// The document char at byte `at` of the window's text; a byte in a separator maps to the
    /// end of the piece before it.
    fn doc_char(&self, at: usize) -> usize {
        let i = self
            .segments
            .partition_point(|s| s.0 <= at)
            .saturating_sub(1);
        let Some(&(byte, doc, chars)) = self.segments.get(i) else {
            return 0;
        };
        let within = self.text.get(byte..at).map_or(0, |s| s.chars().count());
        doc + within.min(chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `lines` of `text` (each shown whole) and returns the secrets' texts.
    fn secrets(text: &str, lines: &[usize]) -> Vec<String> {
        let rope = Rope::from_str(text);
        let shown: Vec<(usize, usize)> = lines.iter().map(|l| (*l, usize::MAX / 2)).collect();
        scan(&rope, &shown)
            .into_iter()
            .map(|s| rope.slice(s.range).to_string())
            .collect()
    }

    #[test]
    fn secrets_are_found_on_whole_lines_in_document_coordinates() {
        let text = "é fn f() {\nlet db_password = \"Tr0ub4dor&3-x\";\n}\n";
        assert_eq!(secrets(text, &[1]), ["Tr0ub4dor&3-x"]);
        assert!(
            secrets(text, &[0, 2]).is_empty(),
            "only the lines asked for"
        );
        let rope = Rope::from_str(text);
        let found = scan(&rope, &[(1, 0)]);
        assert_eq!(
            found.len(),
            1,
            "a line shown in part is still scanned whole"
        );
        let start = text.chars().position(|c| c == 'T').unwrap_or(0);
        assert_eq!(found[0].range, start..start + "Tr0ub4dor&3-x".len());
    }

    #[test]
    fn a_pem_block_is_found_from_any_of_its_lines() {
        let body: String = (0..30)
            .map(|i| format!("MIIEow{i:02}QWERTYUIOPasdfghjkl\n"))
            .collect();
        let text = format!(
            "fn key() -> &'static str {{\nr\"\n-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\n\"\n}}\n"
        );
        let rope = Rope::from_str(&text);
        let begin = 2;
        let end = begin + 31;
        for line in [begin, begin + 1, begin + 15, end - 1, end] {
            let found = scan(&rope, &[(line, 100)]);
            assert_eq!(found.len(), 1, "line {line}");
            let s = rope.slice(found[0].range.clone()).to_string();
            assert!(
                s.starts_with("-----BEGIN RSA") && s.ends_with("PRIVATE KEY-----"),
                "line {line}: {s}"
            );
        }
        assert!(scan(&rope, &[(0, 100)]).is_empty());
        assert!(scan(&rope, &[(end + 1, 100)]).is_empty());
    }

    #[test]
    fn long_lines_are_scanned_near_their_shown_part_only() {
        let far = format!(
            "let x = 1; {} ghp_{}\n",
            "y".repeat(20_000),
            "a1B2".repeat(9)
        );
        let near = format!("let t = ghp_{} {}\n", "a1B2".repeat(9), "y".repeat(20_000));
        let rope = Rope::from_str(&(far.clone() + &near));
        let found = scan(&rope, &[(0, 400), (1, 400)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].range.start > far.len());
    }

    fn masker_over(text: &str) -> (Rope, Vec<DocSecret>) {
        let rope = Rope::from_str(text);
        let all: Vec<(usize, usize)> = (0..rope.len_lines()).map(|l| (l, 1000)).collect();
        let secrets = scan(&rope, &all);
        (rope, secrets)
    }

    #[test]
    fn pieces_are_masked_where_they_overlap_and_secrets_are_counted_once() {
        let text = "url = \"postgres://app:s3cr3tP4ss@db:5432/app\"\nkey = AKIAIOSFODNN7EXAMPLE\n";
        let (rope, secrets) = masker_over(text);
        let mut m = Masker::new(&rope, secrets, true);
        let at = |needle: &str| text.find(needle).unwrap_or(0);
        // A cut through the password: only its overlap is replaced.
        let cut = at("cr3t")..at("@db") + 3;
        assert_eq!(m.piece(cut.clone()), "[REDACTED:password]@db");
        assert_eq!(m.count(), 1);
        // The same secret in another piece is the same secret.
        let line = 0..at("\nkey");
        assert_eq!(
            m.piece(line),
            "url = \"postgres://app:[REDACTED:password]@db:5432/app\""
        );
        assert_eq!(m.count(), 1);
        let key = at("AKIA")..at("AKIA") + 8;
        assert_eq!(m.piece(key), "[REDACTED:aws-access-key]");
        assert_eq!(m.count(), 2);
        let mut off = Masker::new(&rope, Vec::new(), false);
        assert_eq!(off.piece(cut), "cr3tP4ss@db");
        assert_eq!(off.count(), 0);
    }

    #[test]
    fn diagnostics_quoting_a_secret_are_masked() {
        let text = "let db_password = \"Tr0ub4dor&3-x\";\n";
        let (rope, secrets) = masker_over(text);
        let mut m = Masker::new(&rope, secrets, true);
        assert_eq!(
            m.other("unused value `Tr0ub4dor&3` here"),
            "unused value `[REDACTED:secret]` here"
        );
        assert_eq!(m.count(), 1);
        assert_eq!(
            m.other("found ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
            "found [REDACTED:github-token]"
        );
        assert_eq!(m.count(), 2);
        assert_eq!(m.other("nothing here: Tr0ub4"), "nothing here: Tr0ub4");
    }
}
