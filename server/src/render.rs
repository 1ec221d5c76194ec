//! Rendering model output: extracting and indenting code, parsing review findings and explanations.

mod code;
mod explain;
mod fence;
mod findings;
mod plain;

pub use code::{extract_code, fit, fit_generated, leading_indent, reindent};
pub use explain::{parse_explanation, Explanation};
pub use findings::{finding_range, parse_findings, Finding, Severity};
pub use plain::plain_text;

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use ropey::Rope;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic(s in "(?s).{0,400}", a in 0u32..50, b in 0u32..50) {
            let _ = super::parse_findings(&s, (a, b));
            let _ = super::extract_code(&s);
            let _ = super::parse_explanation(&s);
            let _ = super::reindent(&s, "  ");
        }

        #[test]
        fn parsers_never_panic_on_markdown_and_json_soup(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "```", "```json\n", "\n", "\r\n", "[", "]", "{", "}", "\"line\": ",
                    "\"severity\": \"high\"", "12", "-3", "1e99", ",", "## Fix\n", "**", "é",
                    "Headline: ", "\"message\": \"m\"", "  ",
                ]),
                0..60,
            ),
            a in 0u32..5, b in 0u32..5,
        ) {
            let s: String = parts.concat();
            let findings = super::parse_findings(&s, (a, b));
            let (lo, hi) = (a.min(b), a.max(b));
            for f in &findings {
                prop_assert!(lo <= f.start_line && f.start_line <= f.end_line && f.end_line <= hi);
            }
            let _ = super::extract_code(&s);
            let _ = super::parse_explanation(&s);
        }

        #[test]
        fn widen_never_panics_and_stays_in_bounds(
            s in "(?s)[ \t\r\na-z{}()\\[\\]\"'`/#*\\\\]{0,300}",
            x in 0usize..400, y in 0usize..400,
        ) {
            let rope = Rope::from_str(&s);
            let r = crate::prompts::widen(&rope, x..y);
            prop_assert!(r.start <= r.end && r.end <= rope.len_chars());
        }
    }
}
