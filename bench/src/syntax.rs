//! Syntax-tree benchmarks: parse and reparse cost on the 1 MB file, typing and codeAction over
//! LSP with a tree beside a document without one, and what checking and escalating answers
//! buys on a scripted corpus (verified answers and dollars).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use codetier::config::Config;
use codetier::docs::{Change, Position, PositionEncoding, Range, Rope, Store};
use codetier::engine::{Action, Engine, Job};
use codetier::prompts::widen_selection;
use codetier::syntax::{self, Lang, Trees};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Requests, Rule, Script};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::client::{Lsp, Options};
use crate::report::{Report, Row, Target};
use crate::source::{rust_source, Typist};
use crate::stats::{fmt_duration, Summary};
use crate::Ctx;

const GROUP: &str = "Syntax trees (1 MB file)";
const RUST_URI: &str = "file:///bench/src/big.rs";
const PLAIN_URI: &str = "file:///bench/src/big.txt";

/// Today's figures (BENCHMARKS.md before syntax trees) that typing must stay within.
const DID_CHANGE_BEFORE: Duration = Duration::from_nanos(71_200);
const CODE_ACTION_BEFORE: Duration = Duration::from_micros(870);

/// Typing inside comments: one letter inserted or deleted at a random comment line, so the
/// code stays valid (the random `Typist` breaks code everywhere, and error recovery makes
/// every later reparse dearer: a worst case, measured too).
struct CommentTypist {
    /// (line, column where the comment's text starts, current length)
    lines: Vec<(u32, u32, u32)>,
    rng: StdRng,
}

impl CommentTypist {
    fn new(text: &str, seed: u64) -> CommentTypist {
        let lines = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let at = l.find("// ")? as u32 + 3;
                Some((i as u32, at, l.len() as u32))
            })
            .collect();
        CommentTypist {
            lines,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn next_edit(&mut self) -> crate::source::Edit {
        use rand::Rng;
        let k = self.rng.random_range(0..self.lines.len());
        let (line, from, len) = self.lines[k];
        let col = self.rng.random_range(from..=len);
        if len > from + 10 && self.rng.random_bool(0.5) {
            let col = col.min(len - 1);
            self.lines[k].2 -= 1;
            crate::source::Edit {
                line,
                start: col,
                end: col + 1,
                text: "",
            }
        } else {
            self.lines[k].2 += 1;
            crate::source::Edit {
                line,
                start: col,
                end: col,
                text: "x",
            }
        }
    }
}

/// The edit as a store change.
fn change_of(edit: crate::source::Edit) -> Change {
    Change {
        range: Some(Range::new(
            Position::new(edit.line, edit.start),
            Position::new(edit.line, edit.end),
        )),
        text: edit.text.to_owned(),
    }
}

/// Full parse and incremental reparse of the 1 MB file, in process.
pub fn parse_in_process(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let text = rust_source(1 << 20);
    let rope = Rope::from_str(&text);
    let mut full = Vec::new();
    for _ in 0..ctx.scaled(20, 3) {
        let started = Instant::now();
        let parsed = syntax::parse(Lang::Rust, &rope).context("the 1 MB file parses")?;
        full.push(started.elapsed());
        ensure!(!parsed.has_errors(), "the benchmark source parses cleanly");
    }
    report.push(Row::timing(
        GROUP,
        "in process: full parse of the 1 MB Rust file (on didOpen, in the background)",
        &Summary::of(&full).context("samples")?,
        Target::None,
    ));
    // Widening by the tree, as codeAction does it for each action at a cursor.
    let tree = syntax::parse(Lang::Rust, &rope).context("parses")?;
    let mut lines = Typist::new(&text, 0xb10c);
    let mut widen = Vec::new();
    for _ in 0..ctx.scaled(5000, 500) {
        let line = lines.random_line() as usize;
        let at = rope.line_to_char(line) + 6.min(rope.line(line).len_chars());
        let started = Instant::now();
        let block = syntax::enclosing_block(&tree, at..at);
        widen.push(started.elapsed());
        std::hint::black_box(block);
    }
    report.push(Row::timing(
        GROUP,
        "in process: `enclosing_block` at a random cursor",
        &Summary::of(&widen).context("samples")?,
        Target::P50Below(Duration::from_micros(100)),
    ));

    // The edit path as the server runs it: the store applies a change and reports it in bytes,
    // the trees record it (all the notification path pays), then the tree is brought up to
    // date incrementally (what the background thread does).
    let n = ctx.scaled(1000, 100);
    let mut comment = CommentTypist::new(&text, 0x7ee5);
    let mut anywhere = Typist::new(&text, 0x7ee5);
    for (what, valid, background) in [
        ("in a comment (the code stays valid)", true, false),
        (
            "in a comment, the background thread racing the request",
            true,
            true,
        ),
        (
            "anywhere, random (errors pile up: the worst case)",
            false,
            false,
        ),
    ] {
        let store = Store::new();
        let trees = if background {
            Trees::new()
        } else {
            Trees::on_demand()
        };
        store.open(RUST_URI, "rust", 0, &text);
        trees.open(RUST_URI, "rust", 0, &rope);
        trees
            .stamp(RUST_URI)
            .and_then(|s| s.wait())
            .context("first parse")?;
        // The worst case costs ~60 ms a sample: fewer of them.
        let n = if valid { n } else { n / 5 };
        let (mut record, mut reparse) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for version in 1..=n as i32 {
            let edit = if valid {
                comment.next_edit()
            } else {
                anywhere.next_edit()
            };
            let applied = store
                .change(
                    RUST_URI,
                    version,
                    &[change_of(edit)],
                    PositionEncoding::Utf16,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let started = Instant::now();
            trees.edited(RUST_URI, version, &applied.edits, || {
                store.snapshot(RUST_URI).map(|s| s.text)
            });
            record.push(started.elapsed());
            let stamp = trees.stamp(RUST_URI).context("followed")?;
            let started = Instant::now();
            let tree = stamp.wait().context("reparses")?;
            reparse.push(started.elapsed());
            ensure!(tree.text().len_bytes() == stamp.text().len_bytes());
            if valid {
                ensure!(
                    !tree.has_errors(),
                    "typing in comments keeps the tree clean"
                );
            }
        }
        if valid && !background {
            report.push(Row::timing(
                GROUP,
                "in process: recording one 1-char edit for the tree (on the didChange path)",
                &Summary::of(&record).context("samples")?,
                Target::P50Below(Duration::from_micros(5)),
            ));
        }
        report.push(Row::timing(
            GROUP,
            format!("in process: incremental reparse after a 1-char edit {what}"),
            &Summary::of(&reparse).context("samples")?,
            Target::None,
        ));
    }
    report.note(format!(
        "**Parse and reparse.** `syntax::parse` of the benchmark's 1 MB Rust file ({} bytes, \
         `bench/src/source.rs`), then random one-character edits ({n}; a fifth as many for the \
         worst case) applied as the server applies them: `Store::change`, `Trees::edited` (timed: all a `didChange` pays for the \
         tree), then `Stamp::wait`, which edits the previous tree (`Tree::edit`) and reparses \
         incrementally (timed: what the background thread does after each change). Once with \
         edits inside comments, so the code stays valid as most typing leaves it between \
         keystrokes, and once with the sync benchmark's random edits anywhere, which leave \
         a syntax error at every edit: after a few hundred of them error recovery makes each \
         reparse far dearer, a worst case no real file reaches.",
        text.len()
    ));
    Ok(())
}

/// Typing and codeAction over LSP on two copies of the 1 MB file in one server: one with a
/// grammar (Rust, trees), one without (plaintext, heuristics), interleaved so both meet the
/// same machine.
pub fn over_lsp(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let text = rust_source(1 << 20);
    let mut lsp = Lsp::spawn(&ctx.bin, &Options::default())?;
    lsp.initialize()?;
    lsp.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": PLAIN_URI, "languageId": "plaintext", "version": 0, "text": text } }),
    )?;
    let hover =
        json!({ "textDocument": { "uri": RUST_URI }, "position": { "line": 0, "character": 4 } });
    let cursor = |uri: &str, line: u32| json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": line, "character": 6 }, "end": { "line": line, "character": 6 } }, "context": { "diagnostics": [] } });
    lsp.request("textDocument/codeAction", cursor(PLAIN_URI, 3))?;
    let (plain_only, _) = lsp.rss()?;
    lsp.open(RUST_URI, &text)?;
    // The first codeAction on the Rust file waits for its first parse.
    let started = Instant::now();
    lsp.request("textDocument/codeAction", cursor(RUST_URI, 3))?;
    let first = started.elapsed();
    let (rss, _) = lsp.rss()?;
    // On the file as it is, every cursor widens to its function.
    let mut lines = Typist::new(&text, 0x11e5);
    for _ in 0..50 {
        let line = lines.random_line();
        let actions = lsp.request("textDocument/codeAction", cursor(RUST_URI, line))?;
        check_widened(&actions, &text, line)?;
    }
    for _ in 0..50 {
        lsp.request("textDocument/hover", hover.clone())?;
    }

    // codeAction at a cursor: with a current tree, right after an edit (the reply waits for
    // the reparse, off the dispatcher), and by the heuristics. Measured before the random
    // typing below leaves the background parser busy with a file full of errors.
    // A fresh copy for this, typed on in comments only, as in the in-process benchmark.
    let fresh = "file:///bench/src/fresh.rs";
    lsp.open(fresh, &text)?;
    // Its first parse, before timing.
    lsp.request("textDocument/codeAction", cursor(fresh, 3))?;
    let mut comment = CommentTypist::new(&text, 0xc0de);
    let m = ctx.scaled(1000, 100);
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    let mut version = 0;
    for _ in 0..m {
        let line = lines.random_line();
        let started = Instant::now();
        let actions = lsp.request("textDocument/codeAction", cursor(fresh, line))?;
        samples[0].push(started.elapsed());
        check_widened(&actions, &text, line)?;

        version += 1;
        let edit = comment.next_edit();
        lsp.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": fresh, "version": version }, "contentChanges": [edit.to_lsp()] }),
        )?;
        let started = Instant::now();
        lsp.request("textDocument/codeAction", cursor(fresh, line))?;
        samples[1].push(started.elapsed());

        let started = Instant::now();
        lsp.request("textDocument/codeAction", cursor(PLAIN_URI, line))?;
        samples[2].push(started.elapsed());
    }
    for (k, what) in [
        "codeAction at a cursor, widened by the tree",
        "codeAction at a cursor right after a 1-char edit (waits for the reparse)",
        "codeAction at a cursor, widened by the heuristics (plaintext)",
    ]
    .into_iter()
    .enumerate()
    {
        report.push(Row::timing(
            GROUP,
            format!("over LSP: {what}"),
            &Summary::of(&samples[k]).context("samples")?,
            Target::P99Below(Duration::from_millis(5)),
        ));
    }
    let mut typists = [Typist::new(&text, 0x5eed), Typist::new(&text, 0x5eed)];
    let mut versions = [0i32, 0];
    let n = ctx.scaled(2000, 200);
    let (mut alone, mut changed) = (Vec::with_capacity(n), [Vec::new(), Vec::new()]);
    for _ in 0..n {
        let started = Instant::now();
        lsp.request("textDocument/hover", hover.clone())?;
        alone.push(started.elapsed());
        for (k, uri) in [RUST_URI, PLAIN_URI].into_iter().enumerate() {
            versions[k] += 1;
            let edit = typists[k].next_edit();
            let started = Instant::now();
            lsp.notify(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": uri, "version": versions[k] }, "contentChanges": [edit.to_lsp()] }),
            )?;
            lsp.request("textDocument/hover", hover.clone())?;
            changed[k].push(started.elapsed());
        }
    }
    let base = Summary::of(&alone).context("samples")?;
    for (k, what) in ["with a tree (Rust)", "without one (plaintext)"]
        .into_iter()
        .enumerate()
    {
        let s = Summary::of(&changed[k]).context("samples")?;
        report.push(Row::derived(
            GROUP,
            format!(
                "over LSP: didChange cost, {what} (median of change + hover, minus hover alone)"
            ),
            s.p50.saturating_sub(base.p50),
            Target::P50Below(DID_CHANGE_BEFORE),
        ));
    }

    report.push(Row::bytes(
        GROUP,
        format!(
            "RSS with the 1 MB file as plaintext and as Rust with its tree (as plaintext alone: {})",
            crate::stats::fmt_mib(plain_only)
        ),
        rss,
        Target::None,
    ));
    lsp.shutdown()?;
    report.note(format!(
        "**Typing and codeAction with trees.** One `codetier` process with the 1 MB file open \
         twice, as `rust` (followed by a tree) and as `plaintext` (no grammar: no tree, the \
         bracket and indentation heuristics). Each sample is a hover alone, then a one-character \
         `didChange` + hover on each document (the sync benchmark's random edits), so the \
         three share the machine's state; a change's cost is the difference of the medians, \
         held to the figure before trees ({}). codeAction, on a third copy typed on only in \
         comments: a cursor at a random line, checked to be widened to the enclosing `pub fn` \
         (with its doc comment when the cursor is on that); then the same right after an edit, whose reply waits \
         for that version's tree; then on the plaintext copy (the figure before trees: {} \
         p50). The first codeAction after `didOpen` waited {} for the first parse. \
         RSS is read with the plaintext copy alone (a rope), and again once the Rust copy's \
         tree is parsed: the difference is the second rope and the tree.",
        fmt_duration(DID_CHANGE_BEFORE),
        fmt_duration(CODE_ACTION_BEFORE),
        fmt_duration(first),
    ));
    Ok(())
}

/// The cursor's actions carry a range that starts at the `pub fn` of its function (its doc
/// comment is part of it only when the cursor is on the comment).
fn check_widened(actions: &Value, text: &str, line: u32) -> anyhow::Result<()> {
    let first = &actions[0];
    let command = if first["command"].is_object() {
        &first["command"]
    } else {
        first
    };
    let range = &command["arguments"][0]["range"];
    let start = range["start"]["line"].as_u64().context("a range")? as usize;
    let end = range["end"]["line"].as_u64().context("a range")? as usize;
    let first = text.lines().nth(start).unwrap_or_default();
    if text
        .lines()
        .nth(line as usize)
        .is_none_or(|l| l.trim().is_empty())
    {
        // Between functions no definition holds the cursor: the heuristics take the next one.
        return Ok(());
    }
    // A cursor on the doc comment means the function it documents, the comment included.
    let on_doc = text
        .lines()
        .nth(line as usize)
        .is_some_and(|l| l.starts_with("///"));
    let header = if on_doc {
        start == line as usize && first.starts_with("///")
    } else {
        first.starts_with("pub fn ")
    };
    ensure!(
        header && start <= line as usize && line as usize <= end,
        "line {line} widened to {start}..{end} ({first:?})"
    );
    Ok(())
}

// ---- the cost of verified answers -------------------------------------------------------------

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";
const VARIANTS: usize = 20;
/// Flash answers broken code for this share of the corpus.
const BROKEN_SHARE: f64 = 0.3;

/// One seed task: a stub to generate in a language, and the answers a model gives for it.
struct Task {
    language_id: &'static str,
    file: &'static str,
    /// The document, with `{i}` for the variant; the stub's body is on the line holding `STUB`.
    source: &'static str,
    good: &'static str,
    /// Broken two ways: a syntax error, or another function's name.
    syntax_error: &'static str,
    wrong_name: &'static str,
}

const TASKS: [Task; 5] = [
    Task {
        language_id: "python",
        file: "stats.py",
        source: "import math\n\n\ndef mean(xs):\n    return sum(xs) / len(xs)\n\n\ndef clamp_{i}(value, low, high):\n    \"\"\"Return value limited to [low, high].\"\"\"\n    raise NotImplementedError  # STUB\n",
        good: "```python\ndef clamp_{i}(value, low, high):\n    \"\"\"Return value limited to [low, high].\"\"\"\n    return max(low, min(value, high))\n```",
        syntax_error: "```python\ndef clamp_{i}(value, low, high):\n    \"\"\"Return value limited to [low, high].\"\"\"\n    return max(low, min(value, high)\n```",
        wrong_name: "```python\ndef clamp(value, low, high):\n    return max(low, min(value, high))\n```",
    },
    Task {
        language_id: "javascript",
        file: "cart.js",
        source: "const TAX = 0.2;\n\nfunction sumPrices_{i}(items) {\n  // STUB\n}\n",
        good: "```javascript\nfunction sumPrices_{i}(items) {\n  return items.reduce((total, item) => total + item.price, 0);\n}\n```",
        syntax_error: "```javascript\nfunction sumPrices_{i}(items) {\n  return items.reduce((total, item) => total + item.price, 0;\n}\n```",
        wrong_name: "```javascript\nfunction sumPrices(items) {\n  return items.reduce((t, i) => t + i.price, 0);\n}\n```",
    },
    Task {
        language_id: "typescript",
        file: "users.ts",
        source: "interface User {\n  name: string;\n  age: number;\n}\n\nexport function oldest_{i}(users: User[]): User | undefined {\n  throw new Error(\"STUB\");\n}\n",
        good: "```typescript\nexport function oldest_{i}(users: User[]): User | undefined {\n  return users.reduce<User | undefined>((a, b) => (a && a.age >= b.age ? a : b), undefined);\n}\n```",
        syntax_error: "```typescript\nexport function oldest_{i}(users: User[]): User | undefined {\n  return users.reduce<User | undefined>((a, b) => (a && a.age >= b.age ? a : b, undefined);\n}\n```",
        wrong_name: "```typescript\nexport function eldest(users: User[]): User | undefined {\n  return users[0];\n}\n```",
    },
    Task {
        language_id: "go",
        file: "stats.go",
        source: "package stats\n\nfunc Largest{i}(values []int) int {\n\tpanic(\"STUB\")\n}\n",
        good: "```go\nfunc Largest{i}(values []int) int {\n\tbest := values[0]\n\tfor _, v := range values {\n\t\tif v > best {\n\t\t\tbest = v\n\t\t}\n\t}\n\treturn best\n}\n```",
        syntax_error: "```go\nfunc Largest{i}(values []int) int {\n\tbest := values[0]\n\tfor _, v := range values {\n\t\tif v > best {\n\t\t\tbest = v\n\t\t}\n\treturn best\n}\n```",
        wrong_name: "```go\nfunc Max(values []int) int {\n\treturn values[0]\n}\n```",
    },
    Task {
        language_id: "rust",
        file: "lib.rs",
        source: "pub fn mean(values: &[i32]) -> i32 {\n    values.iter().sum::<i32>() / values.len() as i32\n}\n\npub fn largest_{i}(values: &[i32]) -> i32 {\n    todo!(\"STUB\")\n}\n",
        good: "```rust\npub fn largest_{i}(values: &[i32]) -> i32 {\n    values.iter().copied().max().unwrap_or(i32::MIN)\n}\n```",
        syntax_error: "```rust\npub fn largest_{i}(values: &[i32]) -> i32 {\n    values.iter().copied().max(.unwrap_or(i32::MIN)\n}\n```",
        wrong_name: "```rust\npub fn max_of(values: &[i32]) -> i32 {\n    values[0]\n}\n```",
    },
];

/// One configuration of the experiment.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    FlashOnly,
    AlwaysPremium,
    AutoEscalate,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::FlashOnly => "Flash only (auto_escalate = false)",
            Mode::AlwaysPremium => "always premium (every job on DeepSeek V4 Pro)",
            Mode::AutoEscalate => "auto-escalation (Flash, then Pro when the check fails)",
        }
    }
}

/// A job of the corpus: which task, which variant, and whether Flash breaks it.
struct Case {
    task: usize,
    variant: usize,
    broken: bool,
}

/// Generate on the five seed tasks × 20 variants, Flash broken on 30% of them, in three modes.
pub fn verified_cost(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let variants = ctx.scaled(VARIANTS, 4);
    let mut cases: Vec<Case> = (0..TASKS.len())
        .flat_map(|task| {
            (0..variants).map(move |variant| Case {
                task,
                variant,
                broken: false,
            })
        })
        .collect();
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(0xb40c));
    let broken = (cases.len() as f64 * BROKEN_SHARE).round() as usize;
    for &i in &order[..broken] {
        cases[i].broken = true;
    }
    let mut table = String::from(
        "| mode | jobs | verified answers | requests | cost (USD) | per verified answer (USD) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for mode in [Mode::FlashOnly, Mode::AlwaysPremium, Mode::AutoEscalate] {
        let run = ctx.rt.block_on(run_mode(mode, &cases))?;
        let per = if run.verified > 0 {
            format!("{:.7}", run.cost / run.verified as f64)
        } else {
            "–".into()
        };
        eprintln!(
            "  {:<58} verified {}/{} requests {} cost ${:.7}",
            mode.name(),
            run.verified,
            cases.len(),
            run.requests,
            run.cost
        );
        table.push_str(&format!(
            "| {} | {} | {} ({:.0}%) | {} | {:.7} | {per} |\n",
            mode.name(),
            cases.len(),
            run.verified,
            100.0 * run.verified as f64 / cases.len() as f64,
            run.requests,
            run.cost,
        ));
    }
    report.sections.push((
        "Verified answers and what they cost".to_owned(),
        format!(
            "Generate on a scripted corpus: the five seed tasks (a stub in Python, JavaScript, \
             TypeScript, Go and Rust) × {variants} variants each; Flash answers broken code for \
             {broken} of the {} jobs ({:.0}%: a syntax error, or a function of another name), \
             DeepSeek V4 Pro always correct code.\n\n{table}",
            cases.len(),
            100.0 * BROKEN_SHARE
        ),
    ));
    report.note(
        "**Verified answers.** Each job runs through `Engine::run` in process against the fake \
         provider over HTTP (cache off, hedging off), the job built as the editor builds it: \
         the stub's line as a cursor, widened by the syntax tree to its function, so the check \
         knows the name to expect. A verified answer parses in place and defines that function. \
         Costs are the engine's own, from the token counts the fake reports and the design's \
         output prices (Flash $0.25, Pro $0.78 per million tokens; no input prices are known), \
         both requests counted when a job is escalated.",
    );
    Ok(())
}

struct ModeRun {
    verified: usize,
    requests: usize,
    cost: f64,
}

fn fill(template: &str, variant: usize) -> String {
    template.replace("{i}", &variant.to_string())
}

/// The fake's script for `mode`: the jobs run one at a time, so request numbers per model say
/// which job a request belongs to.
fn script(mode: Mode, cases: &[Case]) -> Script {
    let answer = |text: String, model: &str, index: usize| Rule {
        model: Some(model.to_owned()),
        requests: Some(Requests::Index(vec![index])),
        behavior: Behavior {
            answer: Answer::Text(text),
            ..Behavior::default()
        },
    };
    let good = |c: &Case| fill(TASKS[c.task].good, c.variant);
    let flash = |c: &Case| {
        let t = &TASKS[c.task];
        match (c.broken, c.variant % 3) {
            (false, _) => fill(t.good, c.variant),
            (true, 0) => fill(t.wrong_name, c.variant),
            (true, _) => fill(t.syntax_error, c.variant),
        }
    };
    let mut rules = Vec::new();
    match mode {
        Mode::FlashOnly => {
            for (i, c) in cases.iter().enumerate() {
                rules.push(answer(flash(c), FLASH, i));
            }
        }
        Mode::AlwaysPremium => {
            for (i, c) in cases.iter().enumerate() {
                rules.push(answer(good(c), PRO, i));
            }
        }
        Mode::AutoEscalate => {
            let mut pro = 0;
            for (i, c) in cases.iter().enumerate() {
                rules.push(answer(flash(c), FLASH, i));
                if c.broken {
                    rules.push(answer(good(c), PRO, pro));
                    pro += 1;
                }
            }
        }
    }
    Script {
        default: Behavior {
            answer: Answer::Text("unscripted".into()),
            ..Behavior::default()
        },
        rules,
        ..Script::default()
    }
}

async fn run_mode(mode: Mode, cases: &[Case]) -> anyhow::Result<ModeRun> {
    let fake = FakeProvider::start(script(mode, cases)).await?;
    let mut config = Config {
        base_url: fake.base_url(),
        api_key_env: crate::routing::KEY_ENV.to_owned(),
        ..Config::default()
    };
    config.cache.enabled = false;
    config.hedge.enabled = false;
    config.actions.generate.auto_escalate = mode == Mode::AutoEscalate;
    let engine = Engine::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut run = ModeRun {
        verified: 0,
        requests: 0,
        cost: 0.0,
    };
    for case in cases {
        let task = &TASKS[case.task];
        let source = fill(task.source, case.variant);
        let text = Rope::from_str(&source);
        let lang = Lang::from_language_id(task.language_id).context("a grammar")?;
        let tree = syntax::parse(lang, &text);
        let at = source.find("STUB").context("a stub")?;
        let cursor = text.byte_to_char(at);
        let widened = widen_selection(Action::Generate, &text, tree.as_ref(), cursor..cursor);
        ensure!(
            widened.block.is_some(),
            "{}: the stub is in a function",
            task.file
        );
        let job = Job {
            tier: (mode == Mode::AlwaysPremium).then(|| "pro".to_owned()),
            tree,
            block: widened.block,
            ..Job::new(
                Action::Generate,
                task.file,
                task.language_id,
                text.clone(),
                widened.chars,
            )
        };
        let outcome = engine
            .run(job, None)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", task.file))?;
        run.verified += usize::from(outcome.verified == Some(true));
        run.cost += outcome.answer.cost_usd.unwrap_or_default();
    }
    run.requests = fake.requests().len();
    let expected = match mode {
        Mode::AutoEscalate => cases.len() + cases.iter().filter(|c| c.broken).count(),
        _ => cases.len(),
    };
    ensure!(
        run.requests == expected,
        "{}: {} requests, expected {expected}",
        mode.name(),
        run.requests
    );
    Ok(run)
}
