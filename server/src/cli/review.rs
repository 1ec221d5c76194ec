//! `codetier review`: runs the review action over files in chunks, with bounded concurrency,
//! a token bucket, a spending cap and a progress bar, then prints the report.

use std::io::IsTerminal;
use std::ops::Range;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use ropey::Rope;
use tokio::task::JoinSet;

use super::files::{self, Skip, Target};
use super::report::{FileReport, ReviewReport};
use super::setup::{self, Failure};
use super::{emit, report, Format, Global, ReviewArgs, TokenBucket};
use crate::config::Config;
use crate::engine::{Action, Engine, EngineError, Job, Outcome};
use crate::provider::ProviderError;
use crate::router::RouteError;

/// One file ready to send: its text and the chunks of it to review.
struct Work {
    target: Target,
    text: Rope,
    chunks: Vec<Range<usize>>,
    /// Parsed once for all its chunks, when the language has a grammar.
    tree: Option<crate::syntax::Parsed>,
}

/// What the dispatcher has promised and spent so far (USD).
#[derive(Default)]
struct Spend {
    spent: f64,
    reserved: f64,
}

pub async fn run(global: &Global, args: ReviewArgs) -> Result<u8, Failure> {
    let loaded = setup::load(global)?;
    let mut config = setup::for_batch(loaded.config);
    setup::require_key(&config)?;
    let tier = global
        .tier
        .clone()
        .unwrap_or_else(|| config.actions.review.tier.clone());
    setup::check_tier(&config, &tier)?;
    let estimate = match args.max_cost {
        Some(_) => {
            // A hedge is a second paid request the estimate cannot bound: off under a cap.
            config.hedge.enabled = false;
            Some(request_estimate(&config, &tier)?)
        }
        None => None,
    };
    let (targets, mut skipped) =
        files::collect(&args.paths, &loaded.root, &config.privacy.exclude)?;
    let work = prepare(targets, &config, &mut skipped)?;
    let engine = Arc::new(Engine::new(config.clone()).map_err(|e| {
        Failure::usage(format!("codetier: the provider endpoint is unusable: {e}"))
    })?);
    let run = Dispatch {
        engine,
        tier: tier.clone(),
        fresh: args.fresh,
        env: config.api_key_env.clone(),
        verify: !global.no_verify,
    };
    let (files, notes) = run.all(&work, &args, estimate, &mut skipped).await;
    if let Some(team) = run.engine.team() {
        team.flush(super::team::FLUSH_BOUND).await;
    }
    if let Some(warning) = run.engine.cache().take_warning() {
        super::report(&warning);
    }
    let review = ReviewReport {
        files,
        skipped,
        notes,
        fail_on: args.fail_on,
    };
    let output = match args.format {
        Format::Text => super::report::text(&review, colour_stdout()),
        Format::Json => pretty(&super::report::json(&review)),
        Format::Sarif => pretty(&super::sarif::sarif(&review, &loaded.root)),
    };
    emit(&output);
    for line in review.stderr_notes() {
        report(&line);
    }
    report(&review.summary());
    Ok(review.exit_code())
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// Colour on stdout only for a terminal, and never when NO_COLOR is set (no-color.org).
fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The most one request on `tier` can cost: its `max_tokens` at its output price (no input
/// prices are known). Without a price `--max-cost` cannot be honoured, which is a usage error.
pub fn request_estimate(config: &Config, tier: &str) -> Result<f64, Failure> {
    let t = config
        .tier(tier)
        .map_err(|e| Failure::usage(format!("codetier: {e}")))?;
    let fallback_price = t
        .fallback
        .as_deref()
        .and_then(crate::config::known_model)
        .map(|k| k.output_usd_per_million);
    let Some(price) = t.output_usd_per_million else {
        return Err(Failure::usage(format!(
            "codetier: --max-cost needs the price of tier `{tier}` (model {}): set tiers.{tier}.output_usd_per_million",
            t.model
        )));
    };
    let price = price.max(fallback_price.unwrap_or(0.0));
    let max_tokens = t.max_tokens.unwrap_or(config.max_tokens);
    Ok(f64::from(max_tokens) * price / 1_000_000.0)
}

/// Reads the files and splits them into chunks that fit the context budget; unreadable or
/// empty files become skips.
fn prepare(
    targets: Vec<Target>,
    config: &Config,
    skipped: &mut Vec<Skip>,
) -> Result<Vec<Work>, Failure> {
    // Half the prompt budget for the code under review; the rest is the instructions and the
    // surrounding context.
    let max_chars = (config.context.token_budget * crate::provider::CHARS_PER_TOKEN / 2).max(400);
    let mut out = Vec::new();
    for target in targets {
        let text = match files::read_text(&target.path) {
            Ok(t) => Rope::from_str(&t),
            Err(reason) => {
                skipped.push(Skip {
                    path: target.display,
                    reason,
                });
                continue;
            }
        };
        let range = match target.lines {
            Some(lines) => {
                files::check_lines(&text, lines, &target.display)?;
                files::line_range(&text, lines)
            }
            None => 0..text.len_chars(),
        };
        let chunks = files::chunks(&text, range, max_chars);
        if chunks.is_empty() {
            skipped.push(Skip {
                path: target.display,
                reason: "nothing to review (empty)".into(),
            });
            continue;
        }
        let tree = crate::syntax::Lang::from_language_id(files::language_id(&target.display))
            .and_then(|lang| crate::syntax::parse(lang, &text));
        out.push(Work {
            target,
            text,
            chunks,
            tree,
        });
    }
    Ok(out)
}

struct Dispatch {
    engine: Arc<Engine>,
    tier: String,
    fresh: bool,
    env: String,
    /// Check proposed fixes (`--no-verify` clears it).
    verify: bool,
}

type Done = (usize, Result<Outcome, EngineError>);

/// The dispatcher's view of the run: results so far, money, and why it stopped starting files.
struct State {
    reports: Vec<FileReport>,
    spend: Spend,
    /// Worst-case cost of one request, when `--max-cost` is set.
    estimate: Option<f64>,
    stop: Option<String>,
    progress: ProgressBar,
    set: JoinSet<Done>,
    /// Per file: secrets masked over its requests, and what the budget cut of its chunks.
    masked: Vec<usize>,
    cut: Vec<Vec<String>>,
}

impl State {
    /// Every file reported as cached and free until its requests settle.
    fn new(work: &[Work], tier: &str, estimate: Option<f64>) -> State {
        let reports = work
            .iter()
            .map(|w| FileReport {
                path: w.target.display.clone(),
                tier: tier.to_owned(),
                cached: true,
                cost_usd: Some(0.0),
                chunks: w.chunks.len(),
                ..FileReport::default()
            })
            .collect();
        let total: usize = work.iter().map(|w| w.chunks.len()).sum();
        State {
            reports,
            spend: Spend::default(),
            estimate,
            stop: None,
            progress: progress_bar(total as u64),
            set: JoinSet::new(),
            masked: vec![0; work.len()],
            cut: vec![Vec::new(); work.len()],
        }
    }

    /// Per file: what the budget cut of its chunks, and how many secrets were masked.
    fn file_notes(&self, work: &[Work]) -> Vec<String> {
        let mut notes = Vec::new();
        for (index, file) in work.iter().enumerate() {
            let path = &file.target.display;
            notes.extend(self.cut[index].iter().map(|note| format!("{path}: {note}")));
            match self.masked[index] {
                0 => {}
                1 => notes.push(format!("{path}: 1 secret masked before sending")),
                n => notes.push(format!("{path}: {n} secrets masked before sending")),
            }
        }
        notes
    }
}

impl Dispatch {
    /// Starts the requests in file order, at most `jobs` at once and no faster than the bucket
    /// allows; a file is started only if the money spent, plus what requests in flight may
    /// still cost, plus the worst case of the whole file fits under `--max-cost`.
    async fn all(
        &self,
        work: &[Work],
        args: &ReviewArgs,
        estimate: Option<f64>,
        skipped: &mut Vec<Skip>,
    ) -> (Vec<FileReport>, Vec<String>) {
        let mut state = State::new(work, &self.tier, estimate);
        let bucket = TokenBucket::new(args.rate, 1);
        let jobs = usize::from(args.jobs);
        let mut notes = Vec::new();
        let mut started = vec![false; work.len()];

        for (index, file) in work.iter().enumerate() {
            // Wait for a free slot first, so the failures and costs of finished requests are
            // known before deciding to start this file.
            self.wait_for_slot(&mut state, jobs).await;
            if state.stop.is_none() {
                if let (Some(cap), Some(per_request)) = (args.max_cost, estimate) {
                    let need = per_request * file.chunks.len() as f64;
                    if let Some(why) = self.reserve(&mut state, cap, need).await {
                        notes.push(why.clone());
                        state.stop = Some(why);
                    }
                }
            }
            if let Some(why) = &state.stop {
                skipped.push(Skip {
                    path: file.target.display.clone(),
                    reason: format!("not started: {why}"),
                });
                continue;
            }
            started[index] = true;
            self.start_file(&mut state, index, file, &bucket, jobs)
                .await;
        }
        while let Some(done) = state.set.join_next().await {
            self.settle(&mut state, done);
        }
        state.progress.finish_and_clear();
        notes.extend(state.file_notes(work));
        let files = state
            .reports
            .into_iter()
            .zip(started)
            .filter(|(_, s)| *s)
            .map(|(r, _)| r)
            .collect();
        (files, notes)
    }

    /// Reserves `need` dollars under `cap`, waiting for requests in flight to settle what
    /// they really cost (usually less than reserved) while it does not fit. Returns why the
    /// run stops when it still does not fit with nothing left in flight.
    async fn reserve(&self, state: &mut State, cap: f64, need: f64) -> Option<String> {
        loop {
            if state.spend.spent + state.spend.reserved + need <= cap + 1e-12 {
                state.spend.reserved += need;
                return None;
            }
            match state.set.join_next().await {
                Some(done) => self.settle(state, done),
                None => {
                    return Some(format!(
                        "--max-cost {cap} USD reached: spent ${:.6}, the next file may cost up to ${need:.6}",
                        state.spend.spent
                    ))
                }
            }
        }
    }

    /// Starts one request per chunk of `file`, each when a slot is free.
    async fn start_file(
        &self,
        state: &mut State,
        index: usize,
        file: &Work,
        bucket: &TokenBucket,
        jobs: usize,
    ) {
        for chunk in &file.chunks {
            self.wait_for_slot(state, jobs).await;
            let job = Job {
                tier: Some(self.tier.clone()),
                fresh: self.fresh,
                tree: file.tree.clone(),
                verify: self.verify,
                ..Job::new(
                    Action::Review,
                    &file.target.display,
                    files::language_id(&file.target.display),
                    file.text.clone(),
                    chunk.clone(),
                )
            };
            // Only requests that go upstream count against the provider's rate limit: a
            // rerun answered from the cache is not slowed down.
            if !self.engine.is_cached(&job) {
                bucket.acquire().await;
            }
            let engine = self.engine.clone();
            state.progress.set_message(file.target.display.clone());
            state
                .set
                .spawn(async move { (index, engine.run(job, None).await) });
        }
    }

    async fn wait_for_slot(&self, state: &mut State, jobs: usize) {
        while state.set.len() >= jobs {
            match state.set.join_next().await {
                Some(done) => self.settle(state, done),
                None => break,
            }
        }
    }

    fn settle(&self, state: &mut State, done: Result<Done, tokio::task::JoinError>) {
        state.progress.inc(1);
        let estimate = state.estimate.unwrap_or(0.0);
        state.spend.reserved = (state.spend.reserved - estimate).max(0.0);
        let (index, result) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("a review task failed: {e}");
                return;
            }
        };
        let Some(file) = state.reports.get_mut(index) else {
            return;
        };
        match result {
            Ok(outcome) => {
                if let Some(masked) = state.masked.get_mut(index) {
                    *masked += outcome.redactions;
                }
                // A chunk is cut only when one line alone exceeds the budget; its context
                // being trimmed is the normal case for chunks and not worth a note.
                if let (true, Some(note), Some(cut)) = (
                    outcome.coverage.truncated,
                    &outcome.coverage.note,
                    state.cut.get_mut(index),
                ) {
                    cut.push(note.clone());
                }
                if let (Some(note), Some(notes)) = (&outcome.cut_off_note, state.cut.get_mut(index))
                {
                    notes.push(note.clone());
                }
                // A proposed fix that does not parse was dropped: the finding stays, and the
                // user is told why its fix is missing.
                if let (Some(false), Some(why), Some(notes)) = (
                    outcome.verified,
                    &outcome.unverified_reason,
                    state.cut.get_mut(index),
                ) {
                    notes.push(why.clone());
                }
                // An answer of unknown cost counts as its worst case against the cap.
                state.spend.spent += match outcome.answer.cost_usd {
                    Some(c) => c,
                    None if outcome.cached => 0.0,
                    None => estimate,
                };
                file.cost_usd = match (file.cost_usd, outcome.answer.cost_usd) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                file.cost_estimated |= outcome.answer.usage.estimated && !outcome.cached;
                file.cached &= outcome.cached;
                if !file.models.contains(&outcome.answer.model) {
                    file.models.push(outcome.answer.model.clone());
                }
                file.findings.extend(outcome.findings);
                file.findings.sort_by_key(|f| (f.start_line, f.end_line));
            }
            Err(error) => {
                let failure = setup::engine_failure(&error, &self.env);
                if state.stop.is_none() && is_fatal(&error) {
                    state.stop = Some(format!(
                        "an earlier request failed: {}",
                        first_line(failure.message.trim_start_matches("codetier: "))
                    ));
                }
                file.cached = false;
                if file.error.is_none() {
                    file.error = Some((failure.message, failure.code));
                }
            }
        }
    }
}

/// Errors every later request would hit too: no point starting more files.
fn is_fatal(error: &EngineError) -> bool {
    match error {
        // The model failed so often that the router pauses it (and any fallback): every later
        // file would fail the same way at once.
        EngineError::Route(
            RouteError::UnknownTier(_)
            | RouteError::CircuitOpen { .. }
            | RouteError::TeamBudget { .. },
        ) => true,
        EngineError::Route(RouteError::Provider(p)) => matches!(
            p,
            ProviderError::MissingKey { .. }
                | ProviderError::InvalidKey { .. }
                | ProviderError::BadUrl { .. }
                | ProviderError::KeyRejected { .. }
                | ProviderError::PaymentRequired
                | ProviderError::UnknownModel { .. }
                | ProviderError::UnknownPath { .. }
                | ProviderError::NotChatCompletion { .. }
                | ProviderError::InsecureUrl { .. }
        ),
        _ => false,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A bar on stderr when it is a terminal; hidden (silent) when piped, as in CI logs.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} reviewing [{bar:30}] {pos}/{len} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::super::exit;
    use super::*;

    #[test]
    fn estimate_is_max_tokens_times_output_price() {
        let mut config = Config::default();
        let flash = config.tiers.get_mut("flash").expect("flash");
        flash.max_tokens = Some(2000);
        flash.output_usd_per_million = Some(1.0);
        flash.fallback = None;
        let est = request_estimate(&config, "flash").expect("priced");
        assert!((est - 0.002).abs() < 1e-12, "{est}");
        config
            .tiers
            .get_mut("flash")
            .expect("flash")
            .output_usd_per_million = None;
        assert_eq!(
            request_estimate(&config, "flash")
                .expect_err("no price")
                .code,
            exit::USAGE
        );
    }

    #[test]
    fn fallback_price_counts_when_higher() {
        let mut config = Config::default();
        let flash = config.tiers.get_mut("flash").expect("flash");
        flash.output_usd_per_million = Some(0.1);
        flash.fallback = Some("deepseek-r1".into());
        flash.max_tokens = Some(1_000_000);
        let est = request_estimate(&config, "flash").expect("priced");
        assert!((est - 2.5).abs() < 1e-9, "{est}");
    }
}
