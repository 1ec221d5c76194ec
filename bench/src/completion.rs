//! Inline completions over LSP: a typing replay of a whole file, a keystroke at a time, with pauses at line ends, against a fake provider that knows the file and has a heavy-tailed first-token delay.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Latency, Script};
use serde_json::{json, Value};

use crate::client::Lsp;
use crate::over_lsp::provider_env;
use crate::report::{Report, Row, Target};
use crate::source::rust_source;
use crate::stats::{quantile, Summary};
use crate::Ctx;

const GROUP: &str = "Inline completions (typing replay)";
const URI: &str = "file:///bench/src/typed.rs";
/// Simulated typing: a character every 100 ms, and 600 ms at each line end.
const KEYSTROKE_MS: f64 = 100.0;
const PAUSE_MS: f64 = 600.0;
/// The fake's first-token delay (lognormal) and pace.
const TTFT_P50_MS: f64 = 300.0;
const TTFT_P99_MS: f64 = 2000.0;
const TOKENS_PER_SEC: f64 = 100.0;
/// Characters per streamed token (the server estimates tokens at 4 characters too).
const TOKEN_CHARS: usize = 4;
/// Lines of the file the fake continues with (the server cuts them at the scope).
const ANSWER_LINES: usize = 6;
/// The defaults of `completion.debounce_ms` and `completion.budget_ms`.
const DEBOUNCE_MS: f64 = 75.0;
const BUDGET_MS: f64 = 1500.0;

/// One `textDocument/inlineCompletion` sent and not yet answered.
struct Asked {
    sent: Instant,
    /// The cursor (a char offset) it was sent at.
    cursor: usize,
    /// The keystroke before it typed what the suggestion on screen held.
    typed_suggestion: bool,
    /// Sent at the start of a pause (the cursor at a line end).
    pause: bool,
}

/// What the replay saw.
#[derive(Default)]
struct Seen {
    /// Keystrokes that typed the suggestion on screen, and those of them answered by typeahead.
    typed_suggestion: usize,
    typeahead: usize,
    /// Simulated pause-to-suggestion latencies of the pauses that got one.
    pause_latency: Vec<Duration>,
    /// Suggestions shown from an upstream answer (not typeahead), and how many of all shown
    /// suggestions did not match the file.
    shown_upstream: usize,
    wrong: usize,
    /// didChange + hover round trips, real time, with completions in flight and without.
    change_in_flight: Vec<Duration>,
    change_idle: Vec<Duration>,
}

/// Types the first `lines` lines of the benchmark's Rust file into an empty document at 10
/// characters a second with a 600 ms pause at each line end, as VS Code drives an inline
/// completion provider: per keystroke a `$/cancelRequest` of the request still unanswered, the
/// `didChange`, and a `textDocument/inlineCompletion` at the new cursor, never waiting for an
/// answer. A hover after each `didChange` times the change's round trip.
pub fn typing_replay(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let lines = ctx.scaled(300, 24);
    let scale = 0.1;
    let file: String = rust_source(lines * 60)
        .split_inclusive('\n')
        .take(lines)
        .collect();
    let scaled = |ms: f64| Duration::from_secs_f64(ms * scale / 1000.0);
    let unscale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / scale);
    let fake = ctx
        .rt
        .block_on(FakeProvider::start(Script::always(Behavior {
            answer: Answer::Continue {
                text: file.clone(),
                lines: ANSWER_LINES,
            },
            ttft: Latency::HeavyTail {
                p50_ms: TTFT_P50_MS * scale,
                p99_ms: TTFT_P99_MS * scale,
                seed: 0x18,
                cap_ms: None,
            },
            tokens_per_second: Some(TOKENS_PER_SEC / scale),
            token_chars: Some(TOKEN_CHARS),
            ..Behavior::default()
        })))?;
    let mut lsp = Lsp::spawn(&ctx.bin, &provider_env(&fake))?;
    let debounce = scaled(DEBOUNCE_MS);
    lsp.initialize_with(
        json!({ "inlineCompletion": {} }),
        json!({ "completion": { "debounce_ms": debounce.as_millis() as u64,
                                "budget_ms": scaled(BUDGET_MS).as_millis() as u64 } }),
    )?;
    lsp.open(URI, "")?;
    let rx = lsp.reader()?;

    let chars: Vec<char> = file.chars().collect();
    let mut seen = Seen::default();
    let mut asked: HashMap<i64, Asked> = HashMap::new();
    let mut hovers: HashMap<i64, (Instant, bool)> = HashMap::new();
    let mut latest: Option<i64> = None;
    // The ghost text on screen: where it starts, and what it says.
    let mut shown: Option<(usize, String)> = None;
    let (mut line, mut col, mut offset) = (0u32, 0u32, 0usize);
    let mut pauses = 0;
    let started = Instant::now();
    let mut due = started;
    for (k, &c) in chars.iter().enumerate() {
        due += if c == '\n' && k > 0 {
            scaled(PAUSE_MS)
        } else {
            scaled(KEYSTROKE_MS)
        };
        let mut on_reply = |at: Instant, msg: Value| {
            let Some(id) = msg.get("id").and_then(Value::as_i64) else {
                return;
            };
            if let Some((sent, in_flight)) = hovers.remove(&id) {
                let took = at - sent;
                if in_flight {
                    seen.change_in_flight.push(took);
                } else {
                    seen.change_idle.push(took);
                }
                return;
            }
            let Some(a) = asked.remove(&id) else { return };
            let took = at - a.sent;
            let text = msg["result"]["items"][0]["insertText"]
                .as_str()
                .map(str::to_owned);
            let from_typeahead = took < debounce;
            if a.typed_suggestion {
                seen.typed_suggestion += 1;
                seen.typeahead += usize::from(text.is_some() && from_typeahead);
            }
            if latest != Some(id) {
                return;
            }
            match text {
                Some(text) => {
                    if !file[a.cursor..].starts_with(text.as_str()) {
                        seen.wrong += 1;
                    }
                    seen.shown_upstream += usize::from(!from_typeahead);
                    if a.pause {
                        seen.pause_latency.push(unscale(took));
                    }
                    shown = Some((a.cursor, text));
                }
                None => shown = None,
            }
        };
        // Read replies until the keystroke is due.
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            match rx.recv_timeout(due - now) {
                Ok((at, msg)) => on_reply(at, msg),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("codetier closed its output: {}", lsp.stderr_tail())
                }
            }
        }
        // The editor: what is typed either follows the ghost text or hides it.
        let typed_suggestion = match &shown {
            Some((at, text)) if *at == offset && text.starts_with(c) => {
                let rest = text[c.len_utf8()..].to_owned();
                shown = (!rest.is_empty()).then_some((offset + 1, rest));
                true
            }
            _ => {
                shown = None;
                false
            }
        };
        if let Some(id) = latest.take() {
            if asked.contains_key(&id) {
                lsp.notify("$/cancelRequest", json!({ "id": id }))?;
            }
        }
        let in_flight = !asked.is_empty();
        let (end_line, end_col) = if c == '\n' {
            (line + 1, 0)
        } else {
            (line, col + 1)
        };
        let sent = Instant::now();
        lsp.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": k + 1 },
                    "contentChanges": [{ "range": { "start": { "line": line, "character": col },
                                                     "end": { "line": line, "character": col } },
                                         "text": c.to_string() }] }),
        )?;
        (line, col, offset) = (end_line, end_col, offset + 1);
        let hover = lsp.send(
            "textDocument/hover",
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col } }),
        )?;
        hovers.insert(hover, (sent, in_flight));
        let pause = chars.get(k + 1) == Some(&'\n');
        pauses += usize::from(pause);
        let id = lsp.send(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col },
                    "context": { "triggerKind": 2 } }),
        )?;
        asked.insert(
            id,
            Asked {
                sent: Instant::now(),
                cursor: offset,
                typed_suggestion,
                pause,
            },
        );
        latest = Some(id);
    }
    let typed_for = started.elapsed();
    // The usage report: output tokens of the completions.
    let usage_id = lsp.send(
        "workspace/executeCommand",
        json!({ "command": "codetier.usage", "arguments": [] }),
    )?;
    let usage = wait_for(&rx, usage_id)?;
    let complete = usage["result"]["per_action"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["action"] == "complete").cloned())
        .context("no `complete` row in the usage report")?;
    let output_tokens = complete["output_tokens"].as_u64().unwrap_or(0);
    let requests = fake.requests().len();
    drop(lsp);

    ensure!(
        seen.shown_upstream > 0,
        "no suggestion came from the provider"
    );
    let per_pause = requests as f64 / pauses as f64;
    report.push(count_row(
        format!("upstream requests per pause ({requests} requests, {pauses} pauses)"),
        format!("{per_pause:.2}"),
        "≤ 1.1",
        per_pause <= 1.1,
    ));
    let share = seen.typeahead as f64 / seen.typed_suggestion.max(1) as f64;
    report.push(count_row(
        format!(
            "typed characters answered by typeahead, of the {} that typed the suggestion shown",
            seen.typed_suggestion
        ),
        format!("{:.1}%", 100.0 * share),
        "≥ 90%",
        share >= 0.9,
    ));
    let got = seen.pause_latency.len() as f64 / pauses as f64;
    report.push(count_row(
        format!("pauses that got a suggestion (of {pauses})"),
        format!("{:.1}%", 100.0 * got),
        "≥ 95%",
        got >= 0.95,
    ));
    if let Some(s) = Summary::of(&seen.pause_latency) {
        report.push(Row::timing(
            GROUP,
            "pause-to-suggestion latency of the suggestions shown (simulated time)",
            &s,
            Target::P99Below(Duration::from_millis(1500)),
        ));
    }
    report.push(count_row(
        format!(
            "output tokens per suggestion shown from the provider ({output_tokens} tokens, {} suggestions; {} requests)",
            seen.shown_upstream, requests
        ),
        format!("{:.1}", output_tokens as f64 / seen.shown_upstream as f64),
        "",
        true,
    ));
    for (what, samples) in [
        ("with completions in flight", &seen.change_in_flight),
        ("with none in flight", &seen.change_idle),
    ] {
        if let Some(s) = Summary::of(samples) {
            report.push(Row::timing(
                GROUP,
                format!("didChange (1 char) + hover round trip {what} (real time)"),
                &s,
                Target::None,
            ));
        }
    }
    let mut sorted = seen.pause_latency.clone();
    sorted.sort_unstable();
    eprintln!(
        "  replay: {} chars in {:.1} s real, {requests} requests, {pauses} pauses, {} shown at pauses (p50 {:?}), {} wrong",
        chars.len(),
        typed_for.as_secs_f64(),
        seen.pause_latency.len(),
        (!sorted.is_empty()).then(|| quantile(&sorted, 0.5)),
        seen.wrong,
    );
    report.note(format!(
        "**Inline completion replay.** `bench/src/completion.rs` types the first {lines} lines \
         ({} characters) of the benchmark's Rust file (`bench/src/source.rs`) into an empty \
         document at {:.0} characters a second with a {PAUSE_MS:.0} ms pause at each line end \
         (before its line break), as VS Code drives an inline completion provider: per \
         keystroke a `$/cancelRequest` for the completion still unanswered, the `didChange`, a \
         hover (to time the change's round trip) and a `textDocument/inlineCompletion` at the \
         new cursor, never waiting for answers. The ghost text follows the replies to the latest \
         request, and typing a character it begins with keeps the rest on screen. The fake \
         provider knows the file: it answers the {ANSWER_LINES} lines that follow the prompt's \
         text before the cursor, {TOKEN_CHARS} characters a token at {TOKENS_PER_SEC:.0} tokens/s, \
         after a lognormal first-token delay (p50 {TTFT_P50_MS:.0} ms, p99 {TTFT_P99_MS:.0} ms). \
         Real time is scaled by {scale}: the typing, the pauses, the fake's delays and pace, \
         `completion.debounce_ms` ({DEBOUNCE_MS:.0}) and `completion.budget_ms` ({BUDGET_MS:.0}) \
         are multiplied by it, and the pause-to-suggestion latencies divided by it again (so a \
         millisecond of real scheduling delay shows as {:.0} ms); the didChange round trips are \
         real time. A reply faster than the (scaled) debounce counts as typeahead: anything that \
         goes upstream waits the debounce first. A pause got a suggestion when the reply to the \
         request sent at its start listed one; its latency is from that request to its reply. \
         Output tokens are the usage report's `complete` row.",
        chars.len(),
        1000.0 / KEYSTROKE_MS,
        1.0 / scale,
    ));
    Ok(())
}

/// A row whose figure is a count or a share, in the p50 column.
fn count_row(name: String, value: String, target: &str, met: bool) -> Row {
    Row {
        group: GROUP,
        name,
        n: "1".into(),
        p50: value,
        p99: String::new(),
        target: target.to_owned(),
        met: match (target.is_empty(), met) {
            (true, _) => "",
            (false, true) => "yes",
            (false, false) => "**no**",
        },
    }
}

/// Reads replies until the one to `id` (others are dropped).
fn wait_for(rx: &Receiver<(Instant, Value)>, id: i64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, msg) = rx
            .recv_timeout(left)
            .with_context(|| format!("no reply to request {id}"))?;
        if msg.get("id").and_then(Value::as_i64) == Some(id) && msg.get("method").is_none() {
            return Ok(msg);
        }
    }
}
