//! Conversions between LSP-shaped positions (utf-8 or utf-16 code units) and rope char offsets.
//!
//! Lines end at LF, CRLF or a lone CR, exactly as LSP counts them (ropey is built with
//! `cr_lines` and without `unicode_lines`). Every input is clamped, nothing here panics:
//! a line past the end maps to the end of the document, a character past the end of its
//! line maps to the line's end (before its line break), an offset inside a multi-unit
//! character (a surrogate pair, a multi-byte utf-8 sequence) rounds down to that character,
//! and a char offset between the CR and LF of a CRLF maps to the end of its line.

use std::ops;

use ropey::Rope;

/// The unit in which `Position::character` counts, as negotiated with the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PositionEncoding {
    /// Bytes of the line's utf-8 encoding.
    Utf8,
    /// Code units of the line's utf-16 encoding (the LSP default).
    #[default]
    Utf16,
}

/// A zero-based line and a column counted in the negotiated encoding's code units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub const fn new(line: u32, character: u32) -> Self {
        Position { line, character }
    }
}

/// A half-open range of positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    pub const fn new(start: Position, end: Position) -> Self {
        Range { start, end }
    }
}

/// The char offset a position designates, clamped into the document.
pub fn position_to_char(text: &Rope, pos: Position, enc: PositionEncoding) -> usize {
    let line = pos.line as usize;
    if line >= text.len_lines() {
        return text.len_chars();
    }
    let start = text.line_to_char(line);
    let end = line_content_end(text, line, start);
    let col = pos.character as usize;
    match enc {
        PositionEncoding::Utf16 => {
            let base = text.char_to_utf16_cu(start);
            let limit = text.char_to_utf16_cu(end);
            match base.checked_add(col) {
                // Ropey maps a unit inside a surrogate pair to the pair's char: rounds down.
                Some(unit) if unit < limit => text.utf16_cu_to_char(unit),
                _ => end,
            }
        }
        PositionEncoding::Utf8 => {
            let base = text.char_to_byte(start);
            let limit = text.char_to_byte(end);
            match base.checked_add(col) {
                // Ropey maps a byte inside a multi-byte char to that char: rounds down.
                Some(byte) if byte < limit => text.byte_to_char(byte),
                _ => end,
            }
        }
    }
}

/// The position of a char offset; offsets past the end clamp to the end of the document.
pub fn char_to_position(text: &Rope, char_idx: usize, enc: PositionEncoding) -> Position {
    let idx = char_idx.min(text.len_chars());
    let mut line = text.char_to_line(idx);
    // Defensive: an offset between CR and LF must belong to the line the CRLF ends,
    // whatever the rope's line counting says about a prefix that ends in a lone CR.
    while line > 0 && text.line_to_char(line) > idx {
        line -= 1;
    }
    let start = text.line_to_char(line);
    let end = line_content_end(text, line, start);
    let idx = idx.min(end);
    let character = match enc {
        PositionEncoding::Utf16 => text.char_to_utf16_cu(idx) - text.char_to_utf16_cu(start),
        PositionEncoding::Utf8 => text.char_to_byte(idx) - text.char_to_byte(start),
    };
    Position {
        line: saturating_u32(line),
        character: saturating_u32(character),
    }
}

/// The char range a position range designates; a reversed range collapses to its start.
pub fn range_to_chars(text: &Rope, r: Range, enc: PositionEncoding) -> ops::Range<usize> {
    let start = position_to_char(text, r.start, enc);
    let end = position_to_char(text, r.end, enc).max(start);
    start..end
}

/// The position range of a char range; a reversed range collapses to its start.
pub fn chars_to_range(text: &Rope, r: ops::Range<usize>, enc: PositionEncoding) -> Range {
    let start = r.start.min(text.len_chars());
    let end = r.end.clamp(start, text.len_chars().max(start));
    Range {
        start: char_to_position(text, start, enc),
        end: char_to_position(text, end, enc),
    }
}

/// Length in chars of `line` without its `\n`, `\r\n` or `\r` terminator; 0 past the end.
pub fn line_content_len(text: &Rope, line: usize) -> usize {
    if line >= text.len_lines() {
        return 0;
    }
    let start = text.line_to_char(line);
    line_content_end(text, line, start) - start
}

/// The char offset where `line`'s content ends, before its line break (if any).
fn line_content_end(text: &Rope, line: usize, start: usize) -> usize {
    // `line < len_lines()` because callers pass an existing line. Its break is at the end
    // of its last chunk: the rope never splits a `\r\n` between chunks, and a line slice ends
    // where its break does. One walk down the rope, where a lookup per char is one each.
    let slice = text.line(line);
    let (mut chunks, ..) = slice.chunks_at_byte(slice.len_bytes());
    let tail = chunks.prev().unwrap_or_default().as_bytes();
    let cut = match tail {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n' | b'\r'] => 1,
        _ => 0,
    };
    start + slice.len_chars() - cut
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PositionEncoding::{Utf16, Utf8};

    /// One fixture: `pos` in `enc` must map to char `want`, and char `want` back to `back`.
    fn check(text: &str, enc: PositionEncoding, pos: (u32, u32), want: usize, back: (u32, u32)) {
        let rope = Rope::from_str(text);
        let got = position_to_char(&rope, Position::new(pos.0, pos.1), enc);
        assert_eq!(got, want, "{text:?} {enc:?} {pos:?} -> char");
        let round = char_to_position(&rope, got, enc);
        assert_eq!(
            round,
            Position::new(back.0, back.1),
            "{text:?} {enc:?} char {got} -> position"
        );
    }

    #[test]
    fn ascii_and_line_breaks() {
        check("", Utf16, (0, 0), 0, (0, 0));
        check("", Utf16, (0, 5), 0, (0, 0));
        check("", Utf8, (3, 1), 0, (0, 0));
        check("abc\ndef", Utf16, (1, 2), 6, (1, 2));
        check("abc\ndef", Utf8, (0, 3), 3, (0, 3));
        // Past the end of a line: clamp before its break.
        check("abc\ndef", Utf16, (0, 99), 3, (0, 3));
        check("abc\ndef", Utf16, (1, 99), 7, (1, 3));
        check("abc\ndef", Utf16, (0, u32::MAX), 3, (0, 3));
        // Past the last line: end of document.
        check("abc\ndef", Utf16, (2, 0), 7, (1, 3));
        check("abc\ndef", Utf8, (u32::MAX, u32::MAX), 7, (1, 3));
        // A trailing break opens an empty last line.
        check("abc\n", Utf16, (1, 0), 4, (1, 0));
        check("abc\n", Utf16, (1, 4), 4, (1, 0));
    }

    #[test]
    fn crlf_and_lone_cr() {
        check("ab\r\ncd", Utf16, (0, 2), 2, (0, 2));
        // A column inside the CRLF clamps to the line end, never between CR and LF.
        check("ab\r\ncd", Utf16, (0, 3), 2, (0, 2));
        check("ab\r\ncd", Utf8, (0, 4), 2, (0, 2));
        check("ab\r\ncd", Utf16, (1, 0), 4, (1, 0));
        check("ab\r\ncd", Utf16, (1, 1), 5, (1, 1));
        check("ab\rcd", Utf16, (1, 1), 4, (1, 1));
        check("ab\rcd", Utf16, (0, 5), 2, (0, 2));
        check("\r\r\n\n", Utf16, (1, 0), 1, (1, 0));
        check("\r\r\n\n", Utf16, (2, 0), 3, (2, 0));
        check("\r\r\n\n", Utf16, (3, 0), 4, (3, 0));
        check("\r\r\n\n", Utf16, (4, 0), 4, (3, 0));
        check("x\r\n", Utf16, (1, 0), 3, (1, 0));
        // Unicode line separators are not LSP line breaks.
        check("a\u{2028}b\u{85}c", Utf16, (0, 4), 4, (0, 4));
        check("a\u{2028}b\u{85}c", Utf16, (1, 0), 5, (0, 5));
    }

    #[test]
    fn char_offset_between_cr_and_lf_maps_to_line_end() {
        let rope = Rope::from_str("ab\r\ncd\r\n");
        assert_eq!(char_to_position(&rope, 3, Utf16), Position::new(0, 2));
        assert_eq!(char_to_position(&rope, 7, Utf8), Position::new(1, 2));
        assert_eq!(char_to_position(&rope, 8, Utf8), Position::new(2, 0));
        assert_eq!(char_to_position(&rope, 999, Utf8), Position::new(2, 0));
    }

    #[test]
    fn surrogate_pairs_and_multibyte() {
        // "a😀b": 😀 is 2 utf-16 units and 4 utf-8 bytes.
        check("a😀b", Utf16, (0, 1), 1, (0, 1));
        check("a😀b", Utf16, (0, 2), 1, (0, 1)); // inside the pair: round down
        check("a😀b", Utf16, (0, 3), 2, (0, 3));
        check("a😀b", Utf16, (0, 4), 3, (0, 4));
        check("a😀b", Utf8, (0, 3), 1, (0, 1)); // inside the 4 bytes: round down
        check("a😀b", Utf8, (0, 5), 2, (0, 5));
        check("a😀b", Utf8, (0, 6), 3, (0, 6));
        check("😀\r\n😀", Utf16, (1, 1), 3, (1, 0));
        check("😀\r\n😀", Utf16, (1, 2), 4, (1, 2));
        check("é中", Utf8, (0, 2), 1, (0, 2));
        check("é中", Utf8, (0, 4), 1, (0, 2));
        check("é中", Utf8, (0, 5), 2, (0, 5));
        check("é中", Utf16, (0, 1), 1, (0, 1));
    }

    #[test]
    fn combining_characters_count_as_their_own_chars() {
        // "e\u{301}" is one grapheme but two chars, each one utf-16 unit.
        check("e\u{301}x", Utf16, (0, 1), 1, (0, 1));
        check("e\u{301}x", Utf16, (0, 2), 2, (0, 2));
        check("e\u{301}x", Utf8, (0, 1), 1, (0, 1));
        check("e\u{301}x", Utf8, (0, 2), 1, (0, 1)); // inside U+0301's two bytes
        check("e\u{301}x", Utf8, (0, 3), 2, (0, 3));
    }

    #[test]
    fn ranges_are_ordered_and_clamped() {
        let rope = Rope::from_str("ab\ncd");
        let r = Range::new(Position::new(1, 1), Position::new(0, 0));
        assert_eq!(range_to_chars(&rope, r, Utf16), 4..4);
        let r = Range::new(Position::new(0, 1), Position::new(9, 9));
        assert_eq!(range_to_chars(&rope, r, Utf8), 1..5);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 4..1;
        assert_eq!(
            chars_to_range(&rope, reversed, Utf16),
            Range::new(Position::new(1, 1), Position::new(1, 1))
        );
        assert_eq!(
            chars_to_range(&rope, 2..100, Utf16),
            Range::new(Position::new(0, 2), Position::new(1, 2))
        );
        assert_eq!(
            chars_to_range(&rope, 50..100, Utf16),
            Range::new(Position::new(1, 2), Position::new(1, 2))
        );
    }
}
