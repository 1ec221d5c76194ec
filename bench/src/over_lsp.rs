//! Benchmarks over a real LSP stdio session with the release `codetier`: sync, codeAction, cache hits, startup, memory.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::{json, Value};

use crate::client::{Lsp, Options};
use crate::report::{Report, Row, Target};
use crate::source::{rust_source, Typist};
use crate::stats::{fmt_duration, Summary};
use crate::Ctx;

const GROUP_SYNC: &str = "Document sync and codeAction over LSP (1 MB file)";
const GROUP_CACHE: &str = "Cache hits";
const GROUP_PROCESS: &str = "Startup and memory";
const BIG_URI: &str = "file:///bench/src/big.rs";
const KEY: &str = "sk-codetier-bench-not-a-real-key";
pub(crate) const EXPLANATION: &str = "The loop adds weights without checking the limit first.\n\n\
`i >= limit` is checked after `enumerate`, so every item is still visited.\n\n\
Fix: take only `limit` items.\n\n```rust\n    for (i, item) in items.iter().take(limit).enumerate() {\n```\n";

/// Typing on a 1 MB document, then codeAction listing on it, then the memory that costs.
pub fn sync_and_code_action(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let text = rust_source(1 << 20);
    let mut lsp = Lsp::spawn(&ctx.bin, &Options::default())?;
    lsp.initialize()?;
    lsp.open(BIG_URI, &text)?;
    let mut typist = Typist::new(&text, 0x5eed);
    let lines = typist.line_count();
    let hover = |line: u32| json!({ "textDocument": { "uri": BIG_URI }, "position": { "line": line, "character": 4 } });
    let n = ctx.scaled(2000, 300);
    // Warm up: the first requests wait for the open to be applied, and fault in the code paths.
    for _ in 0..50 {
        lsp.request("textDocument/hover", hover(0))?;
    }

    let mut alone = Vec::with_capacity(n);
    let mut with_change = Vec::with_capacity(n);
    let mut version = 0;
    for _ in 0..n {
        let started = Instant::now();
        lsp.request("textDocument/hover", hover(0))?;
        alone.push(started.elapsed());

        version += 1;
        let edit = typist.next_edit();
        let started = Instant::now();
        lsp.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": BIG_URI, "version": version }, "contentChanges": [edit.to_lsp()] }),
        )?;
        lsp.request("textDocument/hover", hover(0))?;
        with_change.push(started.elapsed());
    }

    // Bursts: many changes written at once (fast typing, or a paste split by the editor), then one request.
    let burst = 500;
    let mut per_edit = Vec::new();
    for _ in 0..ctx.scaled(10, 3) {
        let started = Instant::now();
        for _ in 0..burst {
            version += 1;
            let edit = typist.next_edit();
            lsp.notify_buffered(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": BIG_URI, "version": version }, "contentChanges": [edit.to_lsp()] }),
            )?;
        }
        lsp.request("textDocument/hover", hover(0))?;
        per_edit.push(started.elapsed() / burst);
    }
    let server = lsp.request("codetier/viewFileText", json!({ "uri": BIG_URI }))?;
    ensure!(
        server["version"] == version,
        "the server's copy is at version {} after {version} changes: some were rejected",
        server["version"]
    );

    let s_alone = Summary::of(&alone).context("samples")?;
    let s_change = Summary::of(&with_change).context("samples")?;
    report.push(Row::timing(
        GROUP_SYNC,
        "hover round trip alone (baseline)",
        &s_alone,
        Target::None,
    ));
    report.push(Row::timing(
        GROUP_SYNC,
        "didChange (1 char) + hover round trip",
        &s_change,
        Target::None,
    ));
    report.push(Row::derived(
        GROUP_SYNC,
        "didChange cost, median difference of the two",
        s_change.p50.saturating_sub(s_alone.p50),
        Target::None,
    ));
    report.push(Row::timing(
        GROUP_SYNC,
        format!("didChange in bursts of {burst}, per change"),
        &Summary::of(&per_edit).context("samples")?,
        Target::None,
    ));

    // codeAction: a cursor (empty range, widened to the enclosing function) and a 10-line selection.
    let code_action = |range: Value| json!({ "textDocument": { "uri": BIG_URI }, "range": range, "context": { "diagnostics": [] } });
    let range = |sl: u32, sc: u32, el: u32, ec: u32| json!({ "start": { "line": sl, "character": sc }, "end": { "line": el, "character": ec } });
    let mut cursor = Vec::with_capacity(n);
    let mut selection = Vec::with_capacity(n);
    for _ in 0..n {
        let line = typist.random_line();
        let started = Instant::now();
        let actions = lsp.request(
            "textDocument/codeAction",
            code_action(range(line, 6, line, 6)),
        )?;
        cursor.push(started.elapsed());
        check_actions(&actions)?;

        let first = typist.random_line().min(lines as u32 - 11);
        let started = Instant::now();
        let actions = lsp.request(
            "textDocument/codeAction",
            code_action(range(first, 0, first + 10, 0)),
        )?;
        selection.push(started.elapsed());
        check_actions(&actions)?;
    }
    report.push(Row::timing(
        GROUP_SYNC,
        "codeAction at a cursor (widened to the enclosing fn)",
        &Summary::of(&cursor).context("samples")?,
        Target::P50Below(Duration::from_micros(150)),
    ));
    report.push(Row::timing(
        GROUP_SYNC,
        "codeAction on a 10-line selection",
        &Summary::of(&selection).context("samples")?,
        Target::P99Below(Duration::from_millis(5)),
    ));
    let (rss, peak) = lsp.rss()?;
    report.push(Row::bytes(
        GROUP_PROCESS,
        format!(
            "RSS after the 1 MB file and {version} changes (peak {})",
            crate::stats::fmt_mib(peak)
        ),
        rss,
        Target::BytesBelow(13 * 1024 * 1024),
    ));
    lsp.shutdown()?;
    report.note(format!(
        "**Sync.** One `codetier` process, a {} byte Rust-like file of {lines} lines opened with \
         `didOpen`. Each sample of \"didChange + hover\" writes one single-character \
         `didChange` (insert or delete at a random place, utf-16 positions) and then a \
         `textDocument/hover` that finds nothing; since notifications are applied before any \
         later request is handled, the hover's reply proves the change was applied. The \
         baseline is the same hover alone, so the difference of the medians is what a change \
         costs the round trip. Bursts write {burst} changes without waiting and time them to \
         the reply of one hover. At the end `codetier/viewFileText` confirms the server \
         applied every version. The client is a lean one in `bench/src/client.rs` (reads \
         replies on the sending thread, drops notifications).",
        text.len()
    ));
    report.note(
        "**codeAction.** Same process and file: a request with an empty range at a random line \
         (the server widens it to the enclosing function, scanning up to 1000 lines either side) \
         and one with a 10-line selection; each reply is checked to list the three actions.",
    );
    Ok(())
}

fn check_actions(actions: &Value) -> anyhow::Result<()> {
    let n = actions.as_array().map_or(0, Vec::len);
    if n < 3 {
        bail!("codeAction listed {n} actions, expected at least 3: {actions}");
    }
    Ok(())
}

/// `workspace/executeCommand` answered from the cache: the first explain goes to the fake provider, the rest hit.
pub fn cache_hit(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let fake = ctx.rt.block_on(FakeProvider::start(Script {
        default: Behavior {
            answer: Answer::Text(EXPLANATION.into()),
            ..Behavior::default()
        },
        ..Script::default()
    }))?;
    let mut lsp = Lsp::spawn(&ctx.bin, &provider_env(&fake))?;
    lsp.initialize()?;
    let uri = "file:///bench/src/weigh.rs";
    lsp.open(uri, &rust_source(8_000))?;
    let range =
        json!({ "start": { "line": 3, "character": 0 }, "end": { "line": 10, "character": 5 } });
    let mut run = |token: Option<String>, fresh: bool| {
        let mut params = json!({
            "command": "codetier.explain",
            "arguments": [{ "uri": uri, "range": range, "fresh": fresh }],
        });
        if let Some(token) = token {
            params["workDoneToken"] = json!(token);
        }
        lsp.request("workspace/executeCommand", params)
    };
    let first = run(Some("bench-0".into()), false)?;
    ensure!(first["cached"] == false, "the first ask was a hit: {first}");
    let n = ctx.scaled(1000, 200);
    // Alternating with and without a token, so both see the same machine.
    let (mut with_token, mut without) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let started = Instant::now();
        let reply = run(Some(format!("bench-{}", i + 1)), false)?;
        with_token.push(started.elapsed());
        ensure!(
            reply["cached"] == true,
            "ask {} missed the cache: {reply}",
            i + 1
        );
        let started = Instant::now();
        let reply = run(None, false)?;
        without.push(started.elapsed());
        ensure!(
            reply["cached"] == true,
            "ask {} missed the cache: {reply}",
            i + 1
        );
    }
    let upstream = fake.requests().len();
    ensure!(
        upstream == 1,
        "{upstream} requests reached the provider, expected 1"
    );
    // The whole AI round trip with the provider answering at once: `fresh` skips the cache
    // read, so every command goes upstream (to the fake provider on 127.0.0.1).
    let m = ctx.scaled(500, 100);
    let mut round_trips = Vec::with_capacity(m);
    for i in 0..m {
        let started = Instant::now();
        let reply = run(None, true)?;
        round_trips.push(started.elapsed());
        ensure!(
            reply["cached"] == false,
            "fresh ask {i} came from the cache: {reply}"
        );
    }
    ensure!(
        fake.requests().len() == 1 + m,
        "{} requests reached the provider, expected {}",
        fake.requests().len(),
        1 + m
    );
    lsp.shutdown()?;
    report.push(Row::timing(
        GROUP_CACHE,
        "executeCommand `codetier.explain` answered from the cache, over LSP, with a `workDoneToken`",
        &Summary::of(&with_token).context("samples")?,
        Target::P99Below(Duration::from_millis(5)),
    ));
    report.push(Row::timing(
        GROUP_CACHE,
        "the same without a `workDoneToken` (as our editors send it)",
        &Summary::of(&without).context("samples")?,
        Target::P50Below(Duration::from_micros(600)),
    ));
    report.push(Row::timing(
        GROUP_CACHE,
        "AI round trip over LSP, provider at 0 ms (`fresh`, no token): whole server overhead",
        &Summary::of(&round_trips).context("samples")?,
        Target::P50Below(Duration::from_micros(500)),
    ));
    report.note(
        "**Cache hit over LSP.** `codetier` configured for the fake provider; one \
         `codetier.explain` of an 8-line range goes upstream, then the same command is timed \
         from request to reply, alternately with its own `workDoneToken` and without one (then \
         the server creates a token with `window/workDoneProgress/create`, which the bench \
         client answers; the reply must not wait for that answer). Every reply \
         must say `cached: true` and the provider must have seen exactly one request. The \
         timing includes what a hit does besides the lookup: progress begin/end, the \
         Information diagnostic and `window/showMessage`. The round-trip row then sends \
         the command with `fresh: true` (the cache read skipped), so each goes through \
         prompt, router, provider client, HTTP and SSE to the fake provider, which answers \
         at once: the time is what the server adds to a model's own.",
    );
    Ok(())
}

/// Spawn → `initialize` result, and idle memory with ten open files.
pub fn startup_and_rss(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let fake = ctx.rt.block_on(FakeProvider::start(Script::default()))?;
    let env = provider_env(&fake);
    let runs = ctx.scaled(20, 5);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let mut lsp = Lsp::spawn(&ctx.bin, &env)?;
        lsp.request(
            "initialize",
            json!({ "processId": null, "rootUri": null, "capabilities": {} }),
        )?;
        times.push(started.elapsed());
        lsp.notify("initialized", json!({}))?;
        lsp.shutdown()?;
    }
    report.push(Row::timing(
        GROUP_PROCESS,
        "startup: spawn → initialize result",
        &Summary::of(&times).context("samples")?,
        Target::P50Below(Duration::from_millis(4)),
    ));

    let mut lsp = Lsp::spawn(&ctx.bin, &env)?;
    lsp.initialize()?;
    std::thread::sleep(Duration::from_millis(ctx.scaled(1000, 300) as u64));
    let (fresh_rss, _) = lsp.rss()?;
    report.push(Row::bytes(
        GROUP_PROCESS,
        "idle RSS after `initialize`, no file open",
        fresh_rss,
        Target::BytesBelow(9 * 1024 * 1024),
    ));
    let file = rust_source(40_000);
    for i in 0..10 {
        let uri = format!("file:///bench/src/file{i}.rs");
        lsp.open(&uri, &file)?;
        lsp.request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 5, "character": 0 }, "end": { "line": 5, "character": 0 } }, "context": { "diagnostics": [] } }),
        )?;
    }
    std::thread::sleep(Duration::from_millis(ctx.scaled(1000, 300) as u64));
    let (rss, peak) = lsp.rss()?;
    lsp.shutdown()?;
    report.push(Row::bytes(
        GROUP_PROCESS,
        format!(
            "idle RSS, 10 open files of 40 KB (peak {})",
            crate::stats::fmt_mib(peak)
        ),
        rss,
        Target::BytesBelow(20 * 1024 * 1024),
    ));
    report.note(format!(
        "**Startup.** {runs} runs of: spawn `codetier` (fresh HOME, configured for the fake \
         provider with a key), send `initialize`, stop the clock at its result; then a clean \
         shutdown. Median {}.",
        fmt_duration(Summary::of(&times).map_or(Duration::ZERO, |s| s.p50))
    ));
    report.note(
        "**Memory.** `VmRSS` (and the peak, `VmHWM`) from `/proc/PID/status`: idle after \
         `initialize`, ten 40 KB files opened and a codeAction on each, then a pause; and after \
         the 1 MB sync benchmark.",
    );
    Ok(())
}

pub(crate) fn provider_env(fake: &FakeProvider) -> Options<'static> {
    Options {
        env: vec![
            ("CODETIER_BASE_URL", fake.base_url()),
            ("GLOBAL_API_KEY", KEY.to_owned()),
        ],
        ..Options::default()
    }
}
