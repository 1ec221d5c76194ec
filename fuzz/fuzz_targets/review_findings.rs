//! The tolerant review-findings parser (`server/src/render/findings.rs`).
//!
//! Bytes 0–7 are the selection's two lines (in either order), the rest is the model's answer
//! (lossily UTF-8). Parsing must not panic, must be deterministic, and every finding must lie
//! inside the selection with a non-empty, capped message.
#![no_main]

use codetier::render::parse_findings;
use codetier_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// The parser's cap on a message, plus the ellipsis it appends.
const MAX_MESSAGE_CHARS: usize = 2000 + 1;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    // Mostly small lines, sometimes the extremes.
    let line = |inp: &mut Input| match inp.byte() {
        0 => u32::MAX,
        1 => inp.u32(),
        b => u32::from(b),
    };
    let sel = (line(&mut inp), line(&mut inp));
    let answer = String::from_utf8_lossy(inp.rest());
    let found = parse_findings(&answer, sel);
    let (lo, hi) = (sel.0.min(sel.1), sel.0.max(sel.1));
    for f in &found {
        assert!(
            lo <= f.start_line && f.start_line <= f.end_line && f.end_line <= hi,
            "{f:?} outside {sel:?}"
        );
        assert!(!f.message.trim().is_empty(), "{f:?}");
        assert!(
            f.message.chars().count() <= MAX_MESSAGE_CHARS,
            "message too long"
        );
    }
    assert_eq!(parse_findings(&answer, sel), found, "not deterministic");
});
