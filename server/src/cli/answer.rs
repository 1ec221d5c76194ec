//! `codetier explain` and `codetier generate`: one action on one place in a file, the answer
//! on stdout, and for generate an optional atomic rewrite of the file.

use std::io::Write;
use std::path::Path;

use ropey::Rope;

use super::files::{self, Lines};
use super::setup::{self, Failure};
use super::{emit, exit, report, Global};
use crate::engine::{Action, Engine, Job, Outcome};
use crate::prompts::{widen_selection, Widened};
use crate::router::{Event, TokenCount};
use crate::syntax::{self, Parsed};

pub async fn explain(global: &Global, target: &str, fresh: bool) -> Result<u8, Failure> {
    let (spec_path, lines) = parse_target(target)?;
    let file = File::open(global, &spec_path, lines)?;
    let (text, tree) = (&file.text, file.tree.as_ref());
    let widened = match lines {
        Lines { start, end } if start == end => cursor_block(Action::Explain, text, tree, start),
        lines => widen_selection(Action::Explain, text, tree, files::line_range(text, lines)),
    };
    let outcome = file.ask(Action::Explain, global, fresh, widened).await?;
    let markdown = match &outcome.explanation {
        Some(e) if !e.markdown.trim().is_empty() => e.markdown.clone(),
        _ => outcome.answer.text.clone(),
    };
    emit(&with_newline(report::escape(
        &markdown,
        report::Breaks::Keep,
    )));
    report_prompt(&outcome);
    report(&footer(&outcome));
    Ok(exit::OK)
}

pub async fn generate(
    global: &Global,
    target: &str,
    write: bool,
    fresh: bool,
) -> Result<u8, Failure> {
    let (spec_path, lines) = parse_target(target)?;
    if lines.start != lines.end {
        return Err(Failure::usage(format!(
            "codetier: `{target}`: generate takes FILE:LINE (one line inside the block)"
        )));
    }
    let file = File::open(global, &spec_path, lines)?;
    let widened = cursor_block(
        Action::Generate,
        &file.text,
        file.tree.as_ref(),
        lines.start,
    );
    let selection = widened.chars.clone();
    let outcome = file.ask(Action::Generate, global, fresh, widened).await?;
    let (text, display) = (&file.text, &file.display);
    let code = outcome.code.clone().unwrap_or_default();
    if code.trim().is_empty() {
        return Err(Failure::provider(
            "codetier: the model returned no code; nothing was written",
        ));
    }
    let fitted = crate::render::fit_generated(text, selection.clone(), &code);
    report_prompt(&outcome);
    if !write {
        emit(&with_newline(report::escape(&fitted, report::Breaks::Keep)));
        report(&footer(&outcome));
        return Ok(exit::OK);
    }
    let mut updated = text.clone();
    updated.remove(selection.clone());
    updated.insert(selection.start, &fitted);
    let original = text.to_string();
    write_atomic(&spec_path, &original, &updated.to_string())?;
    let (first, last) = (
        text.char_to_line(selection.start) + 1,
        text.char_to_line(selection.end) + 1,
    );
    report(&format!(
        "codetier: replaced lines {first}-{last} of {display}"
    ));
    report(&footer(&outcome));
    Ok(exit::OK)
}

/// `FILE:LINE` or `FILE:START-END`; a bare file is a usage error here.
fn parse_target(target: &str) -> Result<(std::path::PathBuf, Lines), Failure> {
    let spec = files::parse_spec(target)?;
    if spec.path.is_dir() {
        return Err(Failure::usage(format!(
            "codetier: `{}` is a directory: explain and generate take one file and its lines, \
             e.g. {}/lib.rs:10-20 (review takes whole directories)",
            spec.path.display(),
            spec.path.display().to_string().trim_end_matches('/')
        )));
    }
    let lines = spec.lines.ok_or_else(|| {
        Failure::usage(format!(
            "codetier: `{target}`: give the lines as FILE:START-END or FILE:LINE (1-based)"
        ))
    })?;
    Ok((spec.path, lines))
}

/// The file an action runs on, with the engine that will answer it.
struct File {
    loaded: setup::Loaded,
    engine: Engine,
    /// The path as the prompt and messages name it (relative to the root where it can be).
    display: String,
    text: Rope,
    tree: Option<Parsed>,
}

impl File {
    /// Loads the configuration, checks the key, reads the file (and checks `lines` are in it),
    /// builds the engine and parses the file, in that order, so a missing key is reported
    /// before anything else happens.
    fn open(global: &Global, path: &Path, lines: Lines) -> Result<File, Failure> {
        let mut loaded = setup::load(global)?;
        loaded.config = setup::for_batch(loaded.config);
        setup::require_key(&loaded.config)?;
        let display = files::display_path(path, &loaded.root);
        let real_root = std::fs::canonicalize(&loaded.root).unwrap_or_else(|_| loaded.root.clone());
        if let Some(why) =
            files::excluded(&display, path, &real_root, &loaded.config.privacy.exclude)
        {
            return Err(Failure::usage(format!(
                "codetier: {display} {why}, so it is never sent to the model"
            )));
        }
        let text = files::read_text(path)
            .map_err(|why| Failure::usage(format!("codetier: {}: {why}", path.display())))?;
        let text = Rope::from_str(&text);
        files::check_lines(&text, lines, &display)?;
        let engine = Engine::new(loaded.config.clone()).map_err(|e| {
            Failure::usage(format!("codetier: the provider endpoint is unusable: {e}"))
        })?;
        let tree = tree_of(&display, &text);
        Ok(File {
            loaded,
            engine,
            display,
            text,
            tree,
        })
    }

    /// Runs `action` on `widened`, with progress on stderr; the team's spend is flushed and any
    /// cache warning shown before it returns.
    async fn ask(
        &self,
        action: Action,
        global: &Global,
        fresh: bool,
        widened: Widened,
    ) -> Result<Outcome, Failure> {
        let job = Job {
            tier: global.tier.clone(),
            fresh,
            tree: self.tree.clone(),
            block: widened.block,
            verify: !global.no_verify,
            ..Job::new(
                action,
                &self.display,
                files::language_id(&self.display),
                self.text.clone(),
                widened.chars,
            )
        };
        let engine = &self.engine;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let live = !global.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let (outcome, ()) = tokio::join!(engine.run(job, Some(tx)), show_progress(rx, live));
        if let Some(team) = engine.team() {
            // The spend is booked in the background; this process exits right after the answer.
            team.flush(super::team::FLUSH_BOUND).await;
        }
        if let Some(warning) = engine.cache().take_warning() {
            super::report(&warning);
        }
        outcome.map_err(|e| setup::engine_failure(&e, &self.loaded.config.api_key_env))
    }
}

/// Follows a job on stderr: with `live` (stderr is a terminal, no `--quiet`) one line that is
/// rewritten in place (tier, tokens so far, elapsed) and cleared at the end; always the
/// messages the user must read with the answer (an automatic escalation and why).
async fn show_progress(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>, live: bool) {
    use std::io::Write as _;
    let started = std::time::Instant::now();
    let mut tier = String::new();
    let mut shown = false;
    let mut tokens = TokenCount::default();
    let line = |text: String| {
        let mut err = std::io::stderr().lock();
        // `\r` and "erase line": the progress line is redrawn, never scrolled.
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
    };
    while let Some(event) = rx.recv().await {
        let text = match event {
            Event::Asking { tier: t, model, .. } => {
                tier = t;
                format!("codetier: asking {tier} ({model})…")
            }
            Event::Token(text) => format!(
                "codetier: {tier} · {} tokens · {:.1} s",
                tokens.add(&text),
                started.elapsed().as_secs_f64()
            ),
            Event::Retrying { attempt, reason } => {
                format!("codetier: {tier} · retry {attempt}: {reason}")
            }
            Event::Reasoning(_) | Event::Hedged | Event::FellBack { .. } => continue,
            Event::Escalating {
                message, tier: t, ..
            } => {
                if shown {
                    line(String::new());
                    shown = false;
                }
                report(&format!("codetier: {message}"));
                tier = t;
                continue;
            }
        };
        if live {
            line(text);
            shown = true;
        }
    }
    if shown {
        line(String::new());
    }
}

/// The file's syntax tree, when its language has a grammar.
fn tree_of(display: &str, text: &Rope) -> Option<Parsed> {
    syntax::Lang::from_language_id(files::language_id(display)).and_then(|l| syntax::parse(l, text))
}

/// What `action` works on for 1-based `line`, widened as in the editor from a cursor at its
/// first non-blank character: the enclosing function, method or class by the syntax tree,
/// else the block by brackets and indentation.
fn cursor_block(action: Action, text: &Rope, tree: Option<&Parsed>, line: u32) -> Widened {
    let line = (line as usize)
        .saturating_sub(1)
        .min(text.len_lines().saturating_sub(1));
    let start = text.line_to_char(line);
    let indent = text
        .line(line)
        .chars()
        .take_while(|c| c.is_whitespace() && *c != '\n')
        .count();
    let cursor = start + indent;
    widen_selection(action, text, tree, cursor..cursor)
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn footer(o: &Outcome) -> String {
    let cost = match o.answer.cost_usd {
        Some(c) => format!(
            "{} ({})",
            crate::usage::format_usd(c, 6, o.answer.usage.estimated && !o.cached),
            crate::usage::COST_BASIS
        ),
        None => "cost unknown".into(),
    };
    let cached = if o.cached { ", cached" } else { "" };
    let masked = match o.redactions {
        0 => String::new(),
        1 => ", 1 secret masked".into(),
        n => format!(", {n} secrets masked"),
    };
    let verified = match o.verified {
        Some(true) => ", verified",
        Some(false) => ", unverified",
        None => "",
    };
    format!(
        "codetier: {} ({}), {} ms, {cost}{cached}{masked}{verified}",
        o.answer.tier, o.answer.model, o.latency_ms
    )
}

/// Tells stderr what the answer is about and how far to trust it: the block the line widened
/// to, the budget cutting what was sent, and an answer whose code failed its check.
fn report_prompt(o: &Outcome) {
    if let Some(block) = &o.widened_to {
        report(&format!("codetier: {} of {block}", o.action.as_str()));
    }
    if let Some(note) = &o.coverage.note {
        report(&format!("codetier: {note}"));
    }
    if let Some(note) = &o.cut_off_note {
        report(&format!("codetier: {note}"));
    }
    if o.verified == Some(false) {
        let why = o
            .unverified_reason
            .as_deref()
            .unwrap_or("it failed its check");
        report(&format!("codetier: unverified: {why}"));
    }
}

/// Replaces `path`'s contents with `contents` so that a reader sees either the old or the new
/// file, never a mix: a temporary file in the same directory, flushed to disk, given the old
/// file's permissions, then renamed over it. Refuses when the file no longer holds `expected`
/// (someone edited it while the model answered).
pub fn write_atomic(path: &Path, expected: &str, contents: &str) -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| {
        Failure::usage(format!("codetier: {what} {}: {e}", path.display()))
    };
    let current = std::fs::read_to_string(path).map_err(|e| fail("cannot read", e))?;
    if current != expected {
        return Err(Failure::usage(format!(
            "codetier: {} changed while the model answered; nothing was written (run generate again)",
            path.display()
        )));
    }
    let permissions = std::fs::metadata(path)
        .map_err(|e| fail("cannot stat", e))?
        .permissions();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let (tmp, mut file) =
        create_temp(&dir, &name).map_err(|e| fail("cannot create a temporary file next to", e))?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::set_permissions(&tmp, permissions))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("cannot write", e));
    }
    // The rename is durable once the directory entry is on disk too (best effort: not every
    // platform can open a directory).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_temp(dir: &Path, name: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let mut last = None;
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(
            ".{name}.codetier-{}-{}-{attempt}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_block_widens_to_the_function() {
        let text = Rope::from_str("fn a() {}\n\nfn b() {\n    let x = 1;\n    x\n}\n");
        let tree = tree_of("src/b.rs", &text);
        assert!(tree.is_some());
        for tree in [None, tree.as_ref()] {
            let w = cursor_block(Action::Generate, &text, tree, 4);
            let block = text.slice(w.chars).to_string();
            assert_eq!(block, "fn b() {\n    let x = 1;\n    x\n}", "{tree:?}");
            assert_eq!(w.block.is_some(), tree.is_some());
        }
    }

    #[test]
    fn fit_indents_like_the_target() {
        let text = Rope::from_str("impl A {\n    fn f() {}\n}\n");
        let start = text.line_to_char(1);
        assert_eq!(
            crate::render::fit(&text, start..start + 13, "fn f() {\n    1\n}\n"),
            "    fn f() {\n        1\n    }"
        );
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_keeps_permissions_and_refuses_a_changed_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sh");
        std::fs::write(&path, "old\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o751)).expect("chmod");
        write_atomic(&path, "old\n", "new\n").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o751);
        let err = write_atomic(&path, "old\n", "newer\n").expect_err("changed");
        assert!(
            err.message.contains("changed while the model answered"),
            "{}",
            err.message
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
