//! Instructions per request and per edit, counted by valgrind's callgrind: figures that the noise of a busy machine cannot move.
//!
//! Each workload runs twice under `valgrind --tool=callgrind`, with `few` and with `many`
//! repetitions after the same start; the difference of the two totals divided by the
//! difference of the counts is the cost of one repetition, start-up and shutdown cancelled.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, ensure, Context};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::json;

use crate::client::{Lsp, Options};
use crate::over_lsp::{provider_env, EXPLANATION};
use crate::report::{Report, Row, Target};
use crate::source::{rust_source, Typist, FUNCTION_BYTES, FUNCTION_LINES};
use crate::Ctx;

const GROUP: &str = "Instructions (callgrind)";

/// One workload: what it repeats, given a started server and the repetition count.
type Workload<'a> = &'a dyn Fn(&mut Lsp, usize) -> anyhow::Result<()>;

pub fn instruction_counts(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let version = Command::new("valgrind").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        _ => bail!("valgrind is not installed (scripts/deps installs it)"),
    }
    let fake = ctx.rt.block_on(FakeProvider::start(Script {
        default: Behavior {
            answer: Answer::Text(EXPLANATION.into()),
            ..Behavior::default()
        },
        ..Script::default()
    }))?;
    let uri = "file:///bench/src/weigh.rs";
    // Lines `3 + shift` to `3 + shift + more` of `uri`, to character `to` of the last (past
    // its end: to its end, as the protocol says).
    let command_in =
        |uri: &str, shift: usize, more: usize, to: usize, fresh: bool, token: Option<&str>| {
            let mut params = json!({
                "command": "codetier.explain",
                "arguments": [{ "uri": uri, "fresh": fresh, "range": {
                    "start": { "line": 3 + shift, "character": 0 },
                    "end": { "line": 3 + shift + more, "character": to } } }],
            });
            if let Some(token) = token {
                params["workDoneToken"] = json!(token);
            }
            params
        };
    let command = |fresh: bool, token: Option<&str>| command_in(uri, 0, 7, 5, fresh, token);
    let prepare = |lsp: &mut Lsp| -> anyhow::Result<()> {
        lsp.open(uri, &rust_source(8_000))?;
        let first = lsp.request("workspace/executeCommand", command(false, Some("warm")))?;
        ensure!(first["cached"] == false, "the first ask was a hit: {first}");
        Ok(())
    };
    let hits = |lsp: &mut Lsp, n: usize| -> anyhow::Result<()> {
        prepare(lsp)?;
        for _ in 0..n {
            let reply = lsp.request("workspace/executeCommand", command(false, None))?;
            ensure!(reply["cached"] == true, "missed the cache: {reply}");
        }
        Ok(())
    };
    let round_trips = |lsp: &mut Lsp, n: usize| -> anyhow::Result<()> {
        prepare(lsp)?;
        for _ in 0..n {
            let reply = lsp.request("workspace/executeCommand", command(true, None))?;
            ensure!(reply["cached"] == false, "came from the cache: {reply}");
        }
        Ok(())
    };
    // Each request on a function of its own, its loop header selected: the prompt is laid
    // out and the answer's fix checked anew every time (the row above asks one range again,
    // whose prompt and check are remembered for the unchanged document). The fake's fix is
    // that header rewritten, so here it parses in place, as a good answer's does; above it
    // replaces the whole loop with its header and fails the check.
    let new_ranges = |lsp: &mut Lsp, n: usize| -> anyhow::Result<()> {
        prepare(lsp)?;
        // The same document in both runs, so its parse and index cancel out.
        const FUNCTIONS: usize = 64;
        ensure!(n <= FUNCTIONS, "{n} requests, {FUNCTIONS} functions");
        let many = "file:///bench/src/many.rs";
        lsp.open(many, &rust_source(FUNCTION_BYTES * FUNCTIONS))?;
        for i in 0..n {
            let shift = FUNCTION_LINES * i;
            let reply = lsp.request(
                "workspace/executeCommand",
                command_in(many, shift, 0, 1000, true, None),
            )?;
            ensure!(reply["cached"] == false, "came from the cache: {reply}");
        }
        Ok(())
    };
    let big = rust_source(1 << 20);
    let listing = |lsp: &mut Lsp, n: usize| -> anyhow::Result<()> {
        // Plain text, as for the edits below: whether the background parse of the 1 MB file
        // (slowed down ~50x under callgrind) has finished would otherwise decide between the
        // tree's widening and the heuristics', and the two runs would not count the same work.
        lsp.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": "file:///bench/src/big.rs", "languageId": "plaintext",
                                      "version": 0, "text": big } }),
        )?;
        let mut typist = Typist::new(&big, 7);
        for _ in 0..n {
            let line = typist.random_line();
            let at = json!({ "line": line, "character": 6 });
            lsp.request(
                "textDocument/codeAction",
                json!({ "textDocument": { "uri": "file:///bench/src/big.rs" },
                        "range": { "start": at, "end": at }, "context": { "diagnostics": [] } }),
            )?;
        }
        Ok(())
    };
    let edits = |lsp: &mut Lsp, n: usize| -> anyhow::Result<()> {
        // Opened as plain text: no grammar, so no background reparse, whose count under
        // callgrind's slowdown depends on timing (the 1 MB parse even exceeds its time bound
        // there). This row is the notification path itself: framing, dispatch, the rope.
        lsp.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": "file:///bench/src/big.rs", "languageId": "plaintext",
                                      "version": 0, "text": big } }),
        )?;
        let mut typist = Typist::new(&big, 11);
        for version in 1..=n {
            let edit = typist.next_edit();
            lsp.notify_buffered(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": "file:///bench/src/big.rs", "version": version },
                        "contentChanges": [edit.to_lsp()] }),
            )?;
        }
        let text = lsp.request(
            "codetier/viewFileText",
            json!({ "uri": "file:///bench/src/big.rs" }),
        )?;
        ensure!(
            text["version"] == n,
            "not every edit was applied: {}",
            text["version"]
        );
        Ok(())
    };
    let env = provider_env(&fake);
    let (few, many) = (ctx.scaled(10, 5), ctx.scaled(60, 25));
    let rows: [(&str, Workload<'_>, usize, usize); 5] = [
        (
            "cache hit over LSP, no `workDoneToken`, per request",
            &hits,
            few,
            many,
        ),
        (
            "AI round trip over LSP, provider at 0 ms, per request (whole server)",
            &round_trips,
            few,
            many,
        ),
        (
            "AI round trip over LSP, provider at 0 ms, a new function's loop header each time (the prompt laid out, the fix checked anew), per request",
            &new_ranges,
            few,
            many,
        ),
        (
            "codeAction at a cursor on the 1 MB file (plain text: the heuristic widening), per request",
            &listing,
            few,
            many,
        ),
        (
            "didChange (1 char) on the 1 MB file (plain text), per edit",
            &edits,
            ctx.scaled(100, 50),
            ctx.scaled(1100, 300),
        ),
    ];
    let dir = tempfile::tempdir().context("callgrind output directory")?;
    for (name, workload, few, many) in rows {
        let low = count(&ctx.bin, &env, dir.path(), workload, few)?;
        let high = count(&ctx.bin, &env, dir.path(), workload, many)?;
        let per = high.saturating_sub(low) / (many - few) as u64;
        // The bar for the whole server per AI round trip.
        let target = if name.starts_with("AI round trip") {
            Target::CountBelow(350_000)
        } else {
            Target::None
        };
        report.push(Row::count(GROUP, name, per, target));
    }
    report.note(format!(
        "**Instructions.** Each workload runs under `valgrind --tool=callgrind` (the server \
         process, every thread) twice, repeating its step {few} and {many} times after the \
         same start (edits: {} and {}); the row is the difference of the two instruction \
         totals divided by the difference of the counts. Unlike the timings, these do not \
         move when the machine is busy, so a change in them is a change in the code. The \
         listing and edit rows open the 1 MB file as plain text: under callgrind its parse \
         runs ~50 times slower in the background, and whether it had finished would decide \
         what a listing widens with, so the listing row measures the heuristic widening \
         (`widen::Window::scan`) and the edit row no reparse.",
        ctx.scaled(100, 50),
        ctx.scaled(1100, 300),
    ));
    Ok(())
}

/// Numbers the profiles kept, in the order the rows run.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Total instructions of one callgrind run of `workload` repeated `n` times.
fn count(
    bin: &Path,
    env: &Options<'_>,
    dir: &Path,
    workload: Workload<'_>,
    n: usize,
) -> anyhow::Result<u64> {
    let out = dir.join(format!("callgrind.{n}.{}", std::process::id()));
    let opts = Options {
        env: env.env.clone(),
        wrapper: vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--quiet".into(),
            format!("--callgrind-out-file={}", out.display()),
        ],
    };
    let mut lsp = Lsp::spawn(bin, &opts)?;
    lsp.initialize()?;
    workload(&mut lsp, n)?;
    lsp.shutdown()?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    // CODETIER_BENCH_CALLGRIND_DIR keeps each profile there, for `callgrind_annotate`.
    match std::env::var_os("CODETIER_BENCH_CALLGRIND_DIR") {
        Some(keep) => {
            let name = format!("callgrind.{}.{n}", KEPT.fetch_add(1, Ordering::Relaxed));
            std::fs::rename(&out, Path::new(&keep).join(name)).context("keep the profile")?;
        }
        None => {
            let _ = std::fs::remove_file(&out);
        }
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no instruction total in the callgrind output")
}
