//! Inline completions over LSP: a typing replay, a keystroke at a time, against a fake provider with a realistic first-token delay.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Latency, Script};
use serde_json::json;

use crate::client::Lsp;
use crate::over_lsp::provider_env;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;
use crate::Ctx;

const GROUP: &str = "Inline completions (typing replay)";
const URI: &str = "file:///bench/src/total.rs";
/// What the fake suggests after `let total = `, and what the replay then types.
const SUGGESTION: &str = "compute_total(&items, limit);";
/// The fake's first-token delay: a flash-tier model on a good day.
const TTFT_MS: u64 = 150;

/// Types `SUGGESTION` after `let total = ` one character at a time, sending `didChange` and then
/// `textDocument/inlineCompletion` per keystroke as VS Code does, and waits for each answer
/// (a real editor does not wait; waiting makes each answer's time measurable). The first
/// keystroke goes upstream (debounce, then the fake); the rest should be typeahead.
pub fn typing_replay(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let fake = ctx
        .rt
        .block_on(FakeProvider::start(Script::always(Behavior {
            answer: Answer::Text(SUGGESTION.into()),
            ttft: Latency::Fixed { ms: TTFT_MS },
            tokens_per_second: Some(200.0),
            ..Behavior::default()
        })))?;
    let mut lsp = Lsp::spawn(&ctx.bin, &provider_env(&fake))?;
    lsp.initialize_with(json!({ "inlineCompletion": {} }), json!({}))?;
    let rounds = ctx.scaled(20, 4);
    let (mut upstream, mut typeahead) = (Vec::new(), Vec::new());
    let mut keystrokes = 0;
    let mut version = 0;
    for round in 0..rounds {
        // A new line each round, so the first ask of each round is a miss (no cache, no typeahead).
        let uri = format!("{URI}{round}");
        let prefix =
            format!("fn f{round}(items: &[u32], limit: usize) -> u32 {{\n    let total = ");
        lsp.open(&uri, &format!("{prefix}\n    total\n}}\n"))?;
        let mut col = "    let total = ".chars().count() as u32;
        let ask = |lsp: &mut Lsp, col: u32| {
            lsp.request(
                "textDocument/inlineCompletion",
                json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": col },
                        "context": { "triggerKind": 2 } }),
            )
        };
        let started = Instant::now();
        let first = ask(&mut lsp, col)?;
        upstream.push(started.elapsed());
        ensure!(
            first["items"][0]["insertText"] == SUGGESTION,
            "round {round}: no suggestion: {first}"
        );
        for ch in SUGGESTION.chars().take(SUGGESTION.chars().count() - 1) {
            version += 1;
            keystrokes += 1;
            lsp.notify(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": uri, "version": version },
                        "contentChanges": [{ "range": { "start": { "line": 1, "character": col }, "end": { "line": 1, "character": col } }, "text": ch.to_string() }] }),
            )?;
            col += 1;
            let started = Instant::now();
            let reply = ask(&mut lsp, col)?;
            typeahead.push(started.elapsed());
            ensure!(
                reply["items"].as_array().is_some_and(|i| i.len() == 1),
                "round {round}: no suggestion after typing {ch:?}: {reply}"
            );
        }
    }
    let requests = fake.requests().len();
    let asked = rounds * SUGGESTION.chars().count();
    lsp.shutdown()?;
    report.push(Row::timing(
        GROUP,
        format!("first suggestion of a line: 75 ms debounce + provider ({TTFT_MS} ms to first token), round trip"),
        &Summary::of(&upstream).context("samples")?,
        Target::None,
    ));
    report.push(Row::timing(
        GROUP,
        "suggestion while typing what it holds (typeahead, no request), didChange + round trip",
        &Summary::of(&typeahead).context("samples")?,
        Target::P99Below(Duration::from_millis(5)),
    ));
    // A plain count, in the p50 column (`Row::count` is for instruction counts).
    report.push(Row {
        group: GROUP,
        name: format!(
            "upstream requests for {asked} completion requests over {keystrokes} keystrokes"
        ),
        n: "1".into(),
        p50: requests.to_string(),
        p99: String::new(),
        target: String::new(),
        met: "",
    });
    Ok(())
}
