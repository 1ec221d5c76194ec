//! The one entry point that runs an AI action, shared by the LSP layer and the CLI.

pub use crate::action::Action;

use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ropey::Rope;
use tokio::sync::mpsc::UnboundedSender;

use crate::cache::{self, Cache};
use crate::complete;
use crate::config::{Config, UnknownTier};
use crate::prompts;
use crate::provider::{Answer, Endpoint, Provider};
use crate::render::{self, Explanation, Finding};
use crate::router::{Event, RouteError, RouteRequest, Router};
use crate::syntax::{self, Block, Expect, Lang, Parsed};
use crate::team::Team;
use crate::usage::Ledger;

/// One request to run an action on a piece of a document.
#[derive(Clone, Debug)]
pub struct Job {
    pub action: Action,
    /// Tier to ask; `None` means the action's configured tier.
    pub tier: Option<String>,
    /// Skip the cache read (the answer is still stored).
    pub fresh: bool,
    /// Path or URI of the file, used for the prompt and the privacy rules.
    pub file_name: String,
    pub language_id: String,
    pub text: Rope,
    /// The selection, in chars, already widened if it was a cursor.
    pub selection: Range<usize>,
    /// Messages of diagnostics other tools attached to the selection.
    pub diagnostics: Vec<String>,
    /// The syntax tree of exactly `text`, when the caller has it (the LSP layer keeps one per
    /// open document); without it the engine parses `text` when the language has a grammar.
    pub tree: Option<Parsed>,
    /// Other documents (open in the editor) whose definitions the prompt may quote; those the
    /// privacy rules exclude are left out.
    pub neighbours: Vec<syntax::Source>,
    /// The definition the selection was widened to (or is), named in the result; for generate
    /// it is what the answer must define.
    pub block: Option<Block>,
    /// Check the answer's code, and escalate a failed one when `auto_escalate` says so;
    /// `--no-verify` clears it.
    pub verify: bool,
}

impl Job {
    /// A job on `selection` of `text` with everything else at its default: the configured
    /// tier, the cache, no tree, no neighbours, verification on.
    pub fn new(
        action: Action,
        file_name: &str,
        language_id: &str,
        text: Rope,
        selection: Range<usize>,
    ) -> Job {
        Job {
            action,
            tier: None,
            fresh: false,
            file_name: file_name.to_owned(),
            language_id: language_id.to_owned(),
            text,
            selection,
            diagnostics: Vec::new(),
            tree: None,
            neighbours: Vec::new(),
            block: None,
            verify: true,
        }
    }
}

/// The result of a job, before any protocol turns it into edits or diagnostics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub action: Action,
    /// What the model said, on which tier, and what it cost this time (`cost_usd` is 0 for a
    /// cached answer). Serialized flat (`tier`, `model`, `usage`, `cost_usd`, `text`); the
    /// reasoning is left out.
    #[serde(flatten, serialize_with = "without_reasoning")]
    pub answer: Answer,
    pub cached: bool,
    /// Answered from the team's Redis (another process paid for it); left out when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub team_hit: bool,
    pub latency_ms: u64,
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub explanation: Option<Explanation>,
    /// For generate: the code to insert, not yet indented.
    #[serde(skip)]
    pub code: Option<String>,
    /// 0-based first and last line of the selection asked about.
    #[serde(skip)]
    pub selection_lines: (u32, u32),
    /// How many distinct secrets were masked in the prompt.
    pub redactions: usize,
    /// Which lines the prompt held, and whether `context.token_budget` cut the selection or
    /// its context (`covered_lines`, `truncated`, `context_lines`, `context_truncated`,
    /// `coverage_note` in the serialized result).
    #[serde(flatten)]
    pub coverage: prompts::Coverage,
    /// The definition the selection was widened to, or is (`kind`, `name`, lines).
    pub block: Option<Block>,
    /// The same, for people: "function `largest` (lines 10–12)".
    pub widened_to: Option<String>,
    /// The definitions from elsewhere quoted in the prompt, with where each came from.
    pub definitions: Vec<String>,
    /// The answer's code parsed where it would stand, and generated code defines what was
    /// asked: `true`, `false`, or `null` when not checked (no grammar, `--no-verify`).
    pub verified: Option<bool>,
    /// Why it is not verified, e.g. "the code did not parse: line 3 (missing `)`)".
    pub unverified_reason: Option<String>,
    /// Set when a failed answer was asked again on the next tier (`auto_escalate`).
    pub escalation: Option<Escalation>,
    /// Set when the provider stopped early (`finish_reason`); such an answer is not cached.
    pub cut_off: Option<CutOff>,
    /// What the user is told about a cut-off answer.
    pub cut_off_note: Option<String>,
}

/// `Outcome`'s answer as results show it: everything but the reasoning.
fn without_reasoning<S: serde::Serializer>(answer: &Answer, s: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        tier: &'a str,
        model: &'a str,
        usage: &'a crate::provider::TokenUsage,
        cost_usd: Option<f64>,
        text: &'a str,
    }
    serde::Serialize::serialize(
        &Shown {
            tier: &answer.tier,
            model: &answer.model,
            usage: &answer.usage,
            cost_usd: answer.cost_usd,
            text: &answer.text,
        },
        s,
    )
}

/// An automatic escalation: the first answer failed its check and the job went to the next
/// tier. `cost_usd` and `usage` of the outcome count both requests.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Escalation {
    /// The tier and model of the first answer.
    pub from_tier: String,
    pub from_model: String,
    /// The tier asked next.
    pub to_tier: String,
    /// What the user was told: "Flash's code did not parse: line 3 — asked DeepSeek V4 Pro".
    pub message: String,
    /// What the first answer cost.
    pub first_cost_usd: Option<f64>,
    /// Both failed and the first was the better of the two, so it is the one delivered.
    pub kept_first: bool,
}

/// Why a job produced no answer. `Display` is what the user reads.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "codetier will not send {path} to the model: it matches privacy.exclude ({pattern_hint})"
    )]
    Excluded { path: String, pattern_hint: String },
    #[error("the selection is empty: select some code first")]
    EmptySelection,
    #[error("{0}")]
    Route(#[from] RouteError),
    #[error("the model's answer was empty: try again or escalate to a premium tier")]
    EmptyAnswer,
    #[error("cancelled")]
    Cancelled,
    /// An answer the provider stopped early; the engine turns it into a marked outcome (or,
    /// for generate, `CutOff`), and it is never cached.
    #[error("{}", .cut_off.message(&.entry.answer.tier, None))]
    Incomplete {
        cut_off: CutOff,
        entry: Box<cache::Entry>,
    },
    /// Generated code that was cut off: nothing is applied.
    #[error("{0}")]
    CutOff(String),
}

/// A tier the configuration does not have, found by the engine before it asks: the same error
/// the router gives, so callers match one variant (`Route(RouteError::UnknownTier)`).
impl From<UnknownTier> for EngineError {
    fn from(unknown: UnknownTier) -> EngineError {
        EngineError::Route(RouteError::UnknownTier(unknown))
    }
}

/// Why an answer is incomplete, from the provider's `finish_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CutOff {
    /// `length`: the tier's `max_tokens` ran out.
    Length,
    /// `content_filter`: the provider's filter stopped the answer.
    ContentFilter,
}

impl CutOff {
    pub fn from_finish_reason(reason: Option<&str>) -> Option<CutOff> {
        match reason? {
            "length" | "max_tokens" => Some(CutOff::Length),
            "content_filter" => Some(CutOff::ContentFilter),
            _ => None,
        }
    }

    /// What the user reads: the cause, the key to change, and the escalation to try.
    pub fn message(self, tier: &str, escalate_to: Option<&str>) -> String {
        let next = escalate_to
            .map(|t| format!(", or escalate to {t}"))
            .unwrap_or_default();
        match self {
            CutOff::Length => format!(
                "the {tier} answer was cut off at its max_tokens: raise `tiers.{tier}.max_tokens` in your user config{next}"
            ),
            CutOff::ContentFilter => format!(
                "the provider's content filter stopped the {tier} answer before its end{next}"
            ),
        }
    }
}

struct Live {
    config: Arc<Config>,
    router: Arc<Router<Provider>>,
}

/// Runs actions: prompt building, cache, router, and parsing of the answer.
pub struct Engine {
    live: RwLock<Live>,
    cache: RwLock<Arc<Cache>>,
    usage: Arc<Ledger>,
    /// The team tier, when `team.redis_url_env` names a usable URL.
    team: RwLock<Option<Team>>,
}

impl Engine {
    /// Builds the engine; fails only when the endpoint itself is unusable.
    pub fn new(config: Config) -> Result<Engine, crate::provider::ProviderError> {
        let config = Arc::new(config);
        let usage = Arc::new(Ledger::new());
        // Opened off this path (`initialize` answers first), once there is work coming (the
        // server's first document, `Cache::open_in_background`) or on first use; its warnings
        // are logged where they arise and shown once by `editor::show_cache_warning`.
        let cache = Arc::new(Cache::open_lazily(&config.cache));
        let router = Arc::new(Self::router(&config, &usage)?);
        let team = Team::from_config_logged(&config.team);
        if let Some(team) = &team {
            team.warm_up();
        }
        cache.set_team(team.clone());
        usage.set_team(team.clone());
        router.set_team(team.clone());
        Ok(Engine {
            live: RwLock::new(Live { config, router }),
            cache: RwLock::new(cache),
            usage,
            team: RwLock::new(team),
        })
    }

    /// The team tier, when there is one.
    pub fn team(&self) -> Option<Team> {
        self.team.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn router(
        config: &Arc<Config>,
        usage: &Arc<Ledger>,
    ) -> Result<Router<Provider>, crate::provider::ProviderError> {
        let provider = Provider::new(Endpoint {
            base_url: config.base_url.clone(),
            api_key_env: config.api_key_env.clone(),
        })?;
        Ok(Router::new(
            config.clone(),
            Arc::new(provider),
            usage.clone(),
        ))
    }

    /// Applies a new configuration; the endpoint and cache are rebuilt only when they changed.
    pub fn set_config(&self, config: Config) -> Result<(), crate::provider::ProviderError> {
        let config = Arc::new(config);
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let endpoint_changed = live.config.base_url != config.base_url
            || live.config.api_key_env != config.api_key_env;
        let team_changed = live.config.team != config.team;
        if team_changed {
            let team = Team::from_config_logged(&config.team);
            if let Some(team) = &team {
                team.warm_up();
            }
            *self.team.write().unwrap_or_else(|e| e.into_inner()) = team;
            self.usage.set_team(self.team());
        }
        if live.config.cache != config.cache {
            let cache = Arc::new(Cache::open_lazily(&config.cache));
            cache.open_in_background();
            cache.set_team(self.team());
            *self.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        } else if team_changed {
            self.cache().set_team(self.team());
        }
        if endpoint_changed {
            live.router = Arc::new(Self::router(&config, &self.usage)?);
            live.router.set_team(self.team());
        } else {
            live.router.set_config(config.clone());
            if team_changed {
                live.router.set_team(self.team());
            }
        }
        live.config = config;
        Ok(())
    }

    pub fn config(&self) -> Arc<Config> {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    pub fn cache(&self) -> Arc<Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn usage(&self) -> &Arc<Ledger> {
        &self.usage
    }

    fn router_handle(&self) -> Arc<Router<Provider>> {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .router
            .clone()
    }

    /// Opens a connection to the provider so the first request does not pay for it.
    pub async fn warm_up(&self) {
        self.router_handle().upstream().warm_up().await;
    }

    /// The tier a job runs on, after defaults.
    pub fn tier_for(&self, action: Action, tier: Option<&str>) -> String {
        match tier {
            Some(t) => t.to_owned(),
            None => self.config().action(action).tier.clone(),
        }
    }

    /// Whether `job`'s answer is in the cache now, so running it would send no request: the CLI
    /// paces only the requests that go upstream. `fresh` jobs, a disabled cache and jobs that
    /// could not run answer `false`.
    pub fn is_cached(&self, job: &Job) -> bool {
        let config = self.config();
        if job.fresh || !config.cache.enabled {
            return false;
        }
        self.prepare(&config, job)
            .is_ok_and(|p| self.cache().get(&p.key).is_some())
    }

    /// Checks a job and builds what it sends: tier, model, prompt and the answer's cache key.
    fn prepare(&self, config: &Config, job: &Job) -> Result<Prepared, EngineError> {
        let tier_name = self.tier_for(job.action, job.tier.as_deref());
        config.tier(&tier_name)?;
        if let Some(why) = prompts::exclusion(&job.file_name, None, None, &config.privacy.exclude) {
            let hint = "see the privacy section of your configuration";
            return Err(EngineError::Excluded {
                path: display_path(&job.file_name),
                pattern_hint: match why {
                    prompts::Exclusion::Name => hint.into(),
                    prompts::Exclusion::Target(target) => {
                        format!("through the file it resolves to, {target}; {hint}")
                    }
                },
            });
        }
        if job.selection.is_empty() {
            return Err(EngineError::EmptySelection);
        }
        let tree = tree_of(job);
        // Definitions from other documents obey the privacy rules like the document itself.
        let neighbours: Vec<syntax::Source> = job
            .neighbours
            .iter()
            .filter(|n| prompts::exclusion(&n.name, None, None, &config.privacy.exclude).is_none())
            .map(|n| syntax::Source {
                name: display_path(&n.name),
                parsed: n.parsed.clone(),
            })
            .collect();
        let file_name = display_path(&job.file_name);
        // The text the tree was parsed from (the job's, by contract): what the prompt is
        // remembered on below is then exactly what it was built from.
        let text = tree.as_ref().map_or(&job.text, Parsed::text);
        let build = || {
            let definitions = match &tree {
                Some(tree) => syntax::definitions_used(tree, job.selection.clone(), &neighbours),
                None => Vec::new(),
            };
            prompts::build(&prompts::ContextInput {
                action: job.action,
                file_name: &file_name,
                language_id: &job.language_id,
                text,
                selection: job.selection.clone(),
                diagnostics: &job.diagnostics,
                token_budget: config.context.token_budget,
                surrounding_lines: config.context.surrounding_lines,
                redact: config.privacy.redact_secrets,
                definitions: &definitions,
            })
        };
        let prompt = match &tree {
            // The same question on an unchanged document (a cache hit, the same range asked
            // again) reuses the prompt laid out the first time, masking included.
            Some(tree) => tree.memo(prompt_key(config, job, &file_name, &neighbours), build),
            None => build(),
        };
        Self::on_tier(config, job.action, tier_name, prompt, tree)
    }

    /// What `prompt` sends on `tier_name`: its model and cache key.
    fn on_tier(
        config: &Config,
        action: Action,
        tier_name: String,
        prompt: prompts::Prompt,
        tree: Option<Parsed>,
    ) -> Result<Prepared, EngineError> {
        let tier = config.tier(&tier_name)?;
        let prompt_text = serde_json::to_string(&prompt.messages).unwrap_or_default();
        let key = cache::key(
            action.as_str(),
            &tier.model,
            prompts::TEMPLATE_VERSION,
            &prompt_text,
        );
        Ok(Prepared {
            model: tier.model.clone(),
            tier_name,
            prompt,
            key,
            tree,
        })
    }

    /// Runs one job to completion. Dropping the future cancels the upstream request
    /// (unless an identical request from elsewhere still waits for it).
    ///
    /// The answer's code is checked ([`check`]); when it fails and the action has
    /// `auto_escalate`, the same prompt is asked once on the next tier of its `escalate` list,
    /// and the better answer is delivered (the second unless both fail and the first failed
    /// less), with both costs counted.
    pub async fn run(
        &self,
        job: Job,
        progress: Option<UnboundedSender<Event>>,
    ) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let config = self.config();
        let prepared = self.prepare(&config, &job)?;
        let tree = prepared.tree.clone();
        let mut first = self
            .ask(&config, &job, &prepared, progress.clone(), started)
            .await?;
        let Some(failure) = check(&job, tree.as_ref(), &mut first) else {
            return Ok(first);
        };
        let next = next_tier(&config, job.action, &first.answer.tier);
        let (true, Some(next)) = (config.action(job.action).auto_escalate, next) else {
            return Ok(first);
        };
        let message = format!(
            "{}'s {} — asked {}",
            tier_label(&config, &first.answer.tier),
            failure.reason,
            tier_label(&config, &next)
        );
        let second_prepared = Self::on_tier(
            &config,
            job.action,
            next.clone(),
            prepared.prompt.clone(),
            tree.clone(),
        )?;
        if let Some(tx) = &progress {
            let _ = tx.send(Event::Escalating {
                tier: next.clone(),
                model: second_prepared.model.clone(),
                message: message.clone(),
            });
        }
        let mut escalation = Escalation {
            from_tier: first.answer.tier.clone(),
            from_model: first.answer.model.clone(),
            to_tier: next.clone(),
            message: message.clone(),
            first_cost_usd: first.answer.cost_usd,
            kept_first: false,
        };
        let mut second = match self
            .ask(&config, &job, &second_prepared, progress.clone(), started)
            .await
        {
            Ok(second) => second,
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(err) => {
                // The first answer, unverified, is better than none.
                tracing::warn!("the escalation to {next} failed: {err}");
                escalation.message = format!("{message}, which failed: {err}");
                escalation.kept_first = true;
                first.escalation = Some(escalation);
                return Ok(first);
            }
        };
        let second_failure = check(&job, tree.as_ref(), &mut second);
        Ok(keep_better(
            &config,
            (first, failure),
            (second, second_failure),
            escalation,
            started,
        ))
    }

    /// Asks one tier: the cache, else the router; parses the answer.
    async fn ask(
        &self,
        config: &Config,
        job: &Job,
        prepared: &Prepared,
        progress: Option<UnboundedSender<Event>>,
        started: Instant,
    ) -> Result<Outcome, EngineError> {
        let Prepared {
            tier_name,
            model,
            prompt,
            key,
            ..
        } = prepared;
        if let Some(tx) = &progress {
            let _ = tx.send(Event::Asking {
                tier: tier_name.clone(),
                model: model.clone(),
                redactions: prompt.redactions,
                coverage_note: prompt.coverage.note.clone(),
            });
        }

        let request = RouteRequest {
            tier: tier_name.clone(),
            messages: prompt.messages.clone(),
            max_tokens: None,
            fim: None,
            action: None,
        };
        // Boxed: the router's future is large, and the cache moves it several times (into
        // the flight, the team's lock) before it runs, or drops it unpolled on a hit.
        let compute = Box::pin(upstream(self.router_handle(), request, progress.clone()));
        let cache = self.cache();
        let shared = if config.cache.enabled {
            // One Redis budget (`team.timeout_ms`) for the lookup and, on a miss, the lock,
            // the router's gate and the write.
            crate::team::scoped(cache.share_served(*key, job.fresh, compute)).await
        } else {
            crate::team::scoped(compute)
                .await
                .map(|entry| cache::Served {
                    entry,
                    cached: false,
                    team: false,
                })
        };
        let (entry, cached, team_hit, cut_off) = match shared {
            Ok(s) => (s.entry, s.cached, s.team, None),
            Err(EngineError::Incomplete { cut_off, entry }) => {
                (*entry, false, false, Some(cut_off))
            }
            Err(e) => return Err(e),
        };
        self.usage.record_lookup(tier_name, cached, team_hit);
        if cached {
            let saved = crate::usage::cost_usd(
                entry.answer.usage.output_tokens,
                crate::usage::output_price(config.tiers.get(tier_name), &entry.answer.model),
            );
            self.usage
                .record_cache_hit(tier_name, &entry.answer.model, entry.answer.usage, saved);
        }
        let mut outcome = finish(job.action, tier_name, entry, cached, started, prompt);
        outcome.team_hit = team_hit;
        outcome.widened_to = job.block.as_ref().map(Block::describe);
        outcome.block = job.block.clone();
        if let Some(cut_off) = cut_off {
            mark_cut_off(&mut outcome, cut_off, config)?;
        }
        Ok(outcome)
    }
}

/// Of a first answer that failed its check and the escalation's answer, the one delivered:
/// the second unless both failed and the first failed less. Marked when both failed (the
/// reason names both), with both costs and token counts.
fn keep_better(
    config: &Config,
    (first, failure): (Outcome, CheckFailure),
    (second, second_failure): (Outcome, Option<CheckFailure>),
    mut escalation: Escalation,
    started: Instant,
) -> Outcome {
    let (mut kept, other) = match &second_failure {
        Some(f2) if failure.failure.better_than(&f2.failure) => {
            escalation.kept_first = true;
            (first, second)
        }
        _ => (second, first),
    };
    if let Some(f2) = &second_failure {
        let (kept_reason, other_reason) = if escalation.kept_first {
            (&failure.reason, &f2.reason)
        } else {
            (&f2.reason, &failure.reason)
        };
        kept.unverified_reason = Some(format!(
            "the {kept_reason}; {}'s {other_reason} too",
            tier_label(config, &other.answer.tier)
        ));
    }
    kept.answer.cost_usd = match (kept.answer.cost_usd, other.answer.cost_usd) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    kept.answer.usage.input_tokens += other.answer.usage.input_tokens;
    kept.answer.usage.output_tokens += other.answer.usage.output_tokens;
    kept.cached &= other.cached;
    kept.latency_ms = started.elapsed().as_millis() as u64;
    kept.escalation = Some(escalation);
    kept
}

/// The answer of the router for `request` as a cache entry, its events passed on to
/// `progress`. A cut-off answer is an error, so that neither the cache nor a shared waiter
/// keeps it.
async fn upstream(
    router: Arc<Router<Provider>>,
    request: RouteRequest,
    progress: Option<UnboundedSender<Event>>,
) -> Result<cache::Entry, EngineError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The router's events pass on unchanged; the channel in between keeps a shared
    // computation alive when the first caller stops listening.
    let forward = async {
        while let Some(event) = rx.recv().await {
            if let Some(out) = &progress {
                let _ = out.send(event);
            }
        }
    };
    let ask = async move { router.ask(request, Some(tx)).await };
    let (answer, ()) = tokio::join!(ask, forward);
    let answer = answer.map_err(EngineError::Route)?.answer;
    if answer.text.trim().is_empty() {
        return Err(EngineError::EmptyAnswer);
    }
    let cut_off = CutOff::from_finish_reason(answer.finish_reason.as_deref());
    let entry = cache::Entry::new(answer);
    match cut_off {
        Some(cut_off) => Err(EngineError::Incomplete {
            cut_off,
            entry: Box::new(entry),
        }),
        None => Ok(entry),
    }
}

/// A completion at a cursor, protocol-free.
#[derive(Clone, Copy, Debug)]
pub struct CompletionJob<'a> {
    /// Path or URI of the file, for the prompt and the privacy rules.
    pub file_name: &'a str,
    pub language_id: &'a str,
    pub text: &'a Rope,
    /// Char offset of the cursor.
    pub cursor: usize,
}

impl Engine {
    /// Builds what a completion sends, under the privacy rules of the actions: an excluded file
    /// is refused; the text before and after the cursor (within `context.token_budget`) is
    /// masked where it overlaps a secret.
    pub fn prepare_completion(
        &self,
        job: &CompletionJob<'_>,
    ) -> Result<complete::Prepared, EngineError> {
        let config = self.config();
        config.tier(&config.completion.tier)?;
        if prompts::exclusion(job.file_name, None, None, &config.privacy.exclude).is_some() {
            return Err(EngineError::Excluded {
                path: display_path(job.file_name),
                pattern_hint: "see the privacy section of your configuration".into(),
            });
        }
        let (before, after) = complete::window(job.text, job.cursor, config.context.token_budget);
        let (mut pieces, redactions) =
            prompts::masked_pieces(job.text, &[before, after], config.privacy.redact_secrets);
        let suffix = pieces.pop().unwrap_or_default();
        let prefix = pieces.pop().unwrap_or_default();
        let sent = complete::Sent {
            prefix,
            suffix,
            redactions,
        };
        let around = complete::surroundings(job.text, job.cursor);
        Ok(complete::prepare(
            &config,
            &display_path(job.file_name),
            job.language_id,
            sent,
            around,
        ))
    }

    /// The suggestion cached for `prepared` (`Some("")`: nothing was worth showing there).
    pub fn cached_completion(&self, prepared: &complete::Prepared) -> Option<String> {
        if !self.config().cache.enabled {
            return None;
        }
        self.cache()
            .get(&completion_key(prepared))
            .map(|entry| entry.answer.text)
    }

    /// Asks for `prepared`, stopping the stream once the suggestion is complete for its scope,
    /// and caches what was suggested. Dropping the future cancels the upstream request.
    pub async fn complete(
        &self,
        prepared: &complete::Prepared,
    ) -> Result<complete::Asked, EngineError> {
        let router = self.router_handle();
        let asked = complete::ask(&router, prepared).await?;
        if self.config().cache.enabled {
            let entry = cache::Entry::new(Answer {
                text: asked.text.clone().unwrap_or_default(),
                tier: prepared.tier.clone(),
                model: prepared.model.clone(),
                ..Answer::default()
            });
            self.cache().put(&completion_key(prepared), &entry);
        }
        Ok(asked)
    }
}

fn completion_key(prepared: &complete::Prepared) -> cache::CacheKey {
    cache::key(
        complete::ACTION,
        &prepared.model,
        complete::TEMPLATE_VERSION,
        &prepared.cache_text,
    )
}

/// A checked job, ready to send.
struct Prepared {
    tier_name: String,
    model: String,
    prompt: prompts::Prompt,
    key: cache::CacheKey,
    /// The tree of the job's text, for the definitions and the checks.
    tree: Option<Parsed>,
}

/// What a prompt is built from besides the document's text (which the tree it is remembered
/// on stands for): every other input of [`prompts::build`] and [`syntax::definitions_used`],
/// the other documents by their trees.
fn prompt_key(
    config: &Config,
    job: &Job,
    file_name: &str,
    neighbours: &[syntax::Source],
) -> blake3::Hash {
    let mut key = blake3::Hasher::new();
    let mut text = |s: &str| {
        key.update(&(s.len() as u64).to_le_bytes());
        key.update(s.as_bytes());
    };
    text("prompt");
    text(job.action.as_str());
    text(file_name);
    text(&job.language_id);
    for d in &job.diagnostics {
        text(d);
    }
    for n in neighbours {
        text(&n.name);
    }
    let numbers = [
        job.selection.start as u64,
        job.selection.end as u64,
        job.diagnostics.len() as u64,
        config.context.token_budget as u64,
        config.context.surrounding_lines as u64,
        u64::from(config.privacy.redact_secrets),
        neighbours.len() as u64,
    ];
    for n in numbers
        .into_iter()
        .chain(neighbours.iter().map(|n| n.parsed.id()))
    {
        key.update(&n.to_le_bytes());
    }
    key.finalize()
}

/// The job's tree: the caller's, else parsed here when the language has a grammar.
fn tree_of(job: &Job) -> Option<Parsed> {
    let lang = Lang::from_language_id(&job.language_id)?;
    match &job.tree {
        Some(tree) if tree.lang() == lang && tree.text().len_bytes() == job.text.len_bytes() => {
            Some(tree.clone())
        }
        _ => syntax::parse(lang, &job.text),
    }
}

/// The tier after `tier` in the action's `escalate` list: its first entry when `tier` is the
/// action's own (or not in the list), none after the last.
fn next_tier(config: &Config, action: Action, tier: &str) -> Option<String> {
    let escalate = &config.action(action).escalate;
    let next = match escalate.iter().position(|t| t == tier) {
        Some(i) => escalate.get(i + 1),
        None => escalate.first(),
    };
    next.filter(|t| config.tiers.contains_key(*t) && t.as_str() != tier)
        .cloned()
}

/// A tier's name for people ("Flash", "DeepSeek V4 Pro").
fn tier_label(config: &Config, tier: &str) -> String {
    match config.tiers.get(tier) {
        Some(t) if !t.label.is_empty() => t.label.clone(),
        _ => tier.to_owned(),
    }
}

/// Why an answer failed its check, and how badly (to keep the better of two).
struct CheckFailure {
    /// After the tier's name: "code did not parse: line 3 (missing `)`)".
    reason: String,
    failure: syntax::Failure,
}

/// Checks the code an outcome carries where it would stand in the job's text, and marks the
/// outcome: generated code must parse and define the block asked for (or some function); an
/// explanation's fix and each review finding's fix must parse, and one that does not is
/// dropped (the finding stays). Returns the failure, if any. Without a tree (no grammar, or
/// too large) or with `verify` off, `verified` stays `None` and nothing is checked.
fn check(job: &Job, tree: Option<&Parsed>, outcome: &mut Outcome) -> Option<CheckFailure> {
    let tree = tree.filter(|_| job.verify)?;
    match job.action {
        Action::Generate => check_generated(job, tree, outcome),
        Action::Explain => check_fix(job, tree, outcome),
        Action::Review => check_findings(job, tree, outcome),
    }
}

/// Generated code must hold code that parses in place and defines the block asked for.
fn check_generated(job: &Job, tree: &Parsed, outcome: &mut Outcome) -> Option<CheckFailure> {
    let code = outcome.code.clone().unwrap_or_default();
    let failure = if code.trim().is_empty() {
        syntax::Failure {
            reason: "held no code".into(),
            errors: usize::MAX,
            defines: false,
        }
    } else {
        let selection = job.selection.clone();
        let fitted = render::fit_generated(&job.text, selection.clone(), &code);
        let name = job.block.as_ref().and_then(|b| b.name.clone());
        match syntax::verify(tree, selection, &fitted, &Expect::Defines(name))? {
            Ok(()) => {
                outcome.verified = Some(true);
                return None;
            }
            Err(f) => f,
        }
    };
    Some(mark(outcome, "code", failure))
}

/// An explanation's fix must parse in place; one that does not is not offered as a quick
/// fix, and the explanation itself stays.
fn check_fix(job: &Job, tree: &Parsed, outcome: &mut Outcome) -> Option<CheckFailure> {
    let fix = outcome.explanation.as_ref().and_then(|e| e.fix.clone());
    let Some(fix) = fix else {
        outcome.verified = Some(true);
        return None;
    };
    let selection = job.selection.clone();
    let fitted = render::fit(&job.text, selection.clone(), &fix);
    match syntax::verify(tree, selection, &fitted, &Expect::Parses)? {
        Ok(()) => {
            outcome.verified = Some(true);
            None
        }
        Err(f) => {
            if let Some(e) = &mut outcome.explanation {
                e.fix = None;
            }
            Some(mark(outcome, "fix", f))
        }
    }
}

/// Each finding's fix must parse in place; one that does not is dropped (the finding stays).
fn check_findings(job: &Job, tree: &Parsed, outcome: &mut Outcome) -> Option<CheckFailure> {
    let text = &job.text;
    let mut failed: Vec<(u32, syntax::Failure)> = Vec::new();
    for finding in &mut outcome.findings {
        let Some(replacement) = finding.replacement.clone() else {
            // Nothing the model proposed can fail to parse.
            finding.verified = Some(true);
            continue;
        };
        let range = render::finding_range(text, &job.selection, finding);
        let fitted = render::fit(text, range.clone(), &replacement);
        match syntax::verify(tree, range, &fitted, &Expect::Parses) {
            None => {}
            Some(Ok(())) => finding.verified = Some(true),
            Some(Err(f)) => {
                finding.verified = Some(false);
                finding.replacement = None;
                failed.push((finding.start_line, f));
            }
        }
    }
    let Some((line, first)) = failed.first().cloned() else {
        outcome.verified = Some(true);
        return None;
    };
    let failure = if failed.len() == 1 {
        syntax::Failure {
            reason: format!("for line {} {}; it was dropped", line + 1, first.reason),
            ..first
        }
    } else {
        let lines: Vec<String> = failed.iter().map(|(l, _)| (l + 1).to_string()).collect();
        syntax::Failure {
            reason: format!(
                "for lines {} did not parse ({}, …); they were dropped",
                lines.join(", "),
                first.reason
            ),
            errors: failed.iter().map(|(_, f)| f.errors).sum(),
            defines: true,
        }
    };
    let what = if failed.len() == 1 { "fix" } else { "fixes" };
    Some(mark(outcome, what, failure))
}

/// Marks `outcome` unverified for `failure` of its `what` (code, fix, fixes).
fn mark(outcome: &mut Outcome, what: &str, failure: syntax::Failure) -> CheckFailure {
    let reason = format!("{what} {}", failure.reason);
    outcome.verified = Some(false);
    outcome.unverified_reason = Some(format!("the {reason}"));
    CheckFailure { reason, failure }
}

fn finish(
    action: Action,
    tier: &str,
    entry: cache::Entry,
    cached: bool,
    started: Instant,
    prompt: &prompts::Prompt,
) -> Outcome {
    let mut answer = entry.answer;
    answer.tier = tier.to_owned();
    if cached {
        answer.cost_usd = Some(0.0);
    }
    let mut outcome = Outcome {
        action,
        answer,
        cached,
        team_hit: false,
        latency_ms: started.elapsed().as_millis() as u64,
        findings: Vec::new(),
        explanation: None,
        code: None,
        selection_lines: prompt.selection_lines,
        redactions: prompt.redactions,
        coverage: prompt.coverage.clone(),
        block: None,
        widened_to: None,
        definitions: prompt.definitions.clone(),
        verified: None,
        unverified_reason: None,
        escalation: None,
        cut_off: None,
        cut_off_note: None,
    };
    match action {
        Action::Explain => {
            outcome.explanation = Some(render::parse_explanation(&outcome.answer.text))
        }
        // The model saw only the covered lines: findings are clamped into them.
        Action::Review => {
            outcome.findings =
                render::parse_findings(&outcome.answer.text, prompt.coverage.covered_lines)
        }
        Action::Generate => outcome.code = Some(render::extract_code(&outcome.answer.text)),
    }
    outcome
}

/// What a cut-off answer still gives: generate applies nothing (half a function is worse than
/// none), review keeps its complete findings, explain shows what arrived; each says so.
fn mark_cut_off(
    outcome: &mut Outcome,
    cut_off: CutOff,
    config: &Config,
) -> Result<(), EngineError> {
    let escalate_to = config
        .action(outcome.action)
        .escalate
        .iter()
        .find(|t| **t != outcome.answer.tier)
        .and_then(|t| config.tiers.get(t))
        .map(|t| t.label.clone());
    let message = cut_off.message(&outcome.answer.tier, escalate_to.as_deref());
    let note = match outcome.action {
        Action::Generate => {
            return Err(EngineError::CutOff(format!(
                "{message}; nothing was applied"
            )));
        }
        Action::Review => format!(
            "{message}; the {} complete finding(s) that arrived are shown, the rest was lost",
            outcome.findings.len()
        ),
        Action::Explain => {
            if let Some(e) = outcome.explanation.as_mut() {
                e.markdown.push_str(&format!("\n\n*(cut off: {message})*"));
            }
            format!("{message}; what arrived is shown")
        }
    };
    outcome.cut_off = Some(cut_off);
    outcome.cut_off_note = Some(note);
    Ok(())
}

/// The path the privacy rules and the prompt see: a `file://` URI becomes its path.
pub fn display_path(file: &str) -> String {
    match file.strip_prefix("file://") {
        Some(rest) => percent_decode(rest),
        None => file.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a file may not be sent to the model: its name (a URI or path) or, for a file on
/// this machine named by a URI or an absolute path, the file it resolves to matches `globs`.
pub fn is_excluded(file: &str, globs: &[String]) -> bool {
    prompts::exclusion(file, None, None, globs).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: &str = "fn a() {}\n\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}\n";

    /// A job on the `largest` stub, widened as the editor would, and an outcome answering `text`.
    fn answered(action: Action, language_id: &str, source: &str, text: &str) -> (Job, Outcome) {
        let rope = Rope::from_str(source);
        let tree = Lang::from_language_id(language_id).and_then(|l| syntax::parse(l, &rope));
        let at = source.find("todo").unwrap_or(0);
        let widened = prompts::widen_selection(action, &rope, tree.as_ref(), at..at);
        let job = Job {
            block: widened.block,
            tree,
            ..Job::new(action, "src/lib.rs", language_id, rope, widened.chars)
        };
        let prompt = prompts::build(&prompts::ContextInput {
            action,
            file_name: "src/lib.rs",
            language_id,
            text: &job.text,
            selection: job.selection.clone(),
            diagnostics: &[],
            token_budget: 3000,
            surrounding_lines: 5,
            redact: true,
            definitions: &[],
        });
        let entry = cache::Entry {
            answer: Answer {
                text: text.to_owned(),
                tier: "flash".into(),
                model: "deepseek-v4-flash".into(),
                cost_usd: Some(0.0),
                ..Answer::default()
            },
            created_unix: 0,
        };
        let outcome = finish(action, "flash", entry, false, Instant::now(), &prompt);
        (job, outcome)
    }

    fn checked(
        action: Action,
        language_id: &str,
        source: &str,
        text: &str,
    ) -> (Outcome, Option<String>) {
        let (job, mut outcome) = answered(action, language_id, source, text);
        let failure = check(&job, tree_of(&job).as_ref(), &mut outcome);
        (outcome, failure.map(|f| f.reason))
    }

    #[test]
    fn generated_code_is_verified_or_marked_with_the_reason() {
        let good = "```rust\nfn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n```";
        let (o, f) = checked(Action::Generate, "rust", RS, good);
        assert_eq!((o.verified, f), (Some(true), None));
        let broken = "```rust\nfn largest(values: &[i32]) -> i32 {\n    let m = values.iter().max(\n    *m.unwrap()\n}\n```";
        let (o, f) = checked(Action::Generate, "rust", RS, broken);
        assert_eq!(o.verified, Some(false));
        assert!(
            f.as_deref()
                .is_some_and(|r| r.starts_with("code did not parse: line ")),
            "{f:?}"
        );
        assert_eq!(o.unverified_reason, f.map(|r| format!("the {r}")));
        let other = "```rust\nfn smallest() -> i32 { 0 }\n```";
        let (_, f) = checked(Action::Generate, "rust", RS, other);
        assert_eq!(
            f.as_deref(),
            Some("code defines `smallest` instead of `largest`")
        );
        let (_, f) = checked(Action::Generate, "rust", RS, "I cannot help with that.");
        assert!(f.is_some());
        // No grammar: nothing checked, nothing claimed.
        let (o, f) = checked(
            Action::Generate,
            "c",
            "int largest(void) {\n  todo();\n}\n",
            "int largest(void) { return 0; }",
        );
        assert_eq!((o.verified, f), (None, None));
        // --no-verify.
        let (job, mut outcome) = answered(Action::Generate, "rust", RS, broken);
        let job = Job {
            verify: false,
            ..job
        };
        assert!(check(&job, tree_of(&job).as_ref(), &mut outcome).is_none());
        assert_eq!(outcome.verified, None);
    }

    #[test]
    fn a_fix_that_does_not_parse_is_dropped_and_the_rest_stays() {
        let explain = "Headline\n\n## Fix\n```rust\n    todo!(\n```";
        let (o, f) = checked(Action::Explain, "rust", RS, explain);
        let e = o.explanation.expect("parsed");
        assert_eq!((e.headline.as_str(), e.fix), ("Headline", None));
        assert!(f.is_some_and(|r| r.starts_with("fix did not parse")));
        let (o, _) = checked(
            Action::Explain,
            "rust",
            RS,
            "Headline\n\n## Fix\n```rust\n    unimplemented!()\n```",
        );
        assert_eq!(o.verified, Some(true));
        assert!(o.explanation.is_some_and(|e| e.fix.is_some()));

        let review = r#"[{"line": 4, "message": "todo", "replacement": "    values[0\n"},
                         {"line": 4, "message": "fine", "replacement": "    values[0]\n"},
                         {"line": 3, "message": "no fix"}]"#;
        let (o, f) = checked(Action::Review, "rust", RS, review);
        let got: Vec<(Option<bool>, bool)> = o
            .findings
            .iter()
            .map(|f| (f.verified, f.replacement.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(false), false),
                (Some(true), true),
                (Some(true), false)
            ]
        );
        assert!(
            f.is_some_and(|r| r.starts_with("fix for line 4 did not parse")),
            "dropped"
        );
        assert_eq!(o.findings.len(), 3, "findings are kept");
    }

    #[test]
    fn the_next_tier_follows_the_escalate_list() {
        let config = Config::default();
        assert_eq!(
            next_tier(&config, Action::Generate, "flash").as_deref(),
            Some("pro")
        );
        assert_eq!(
            next_tier(&config, Action::Generate, "pro").as_deref(),
            Some("reasoning")
        );
        assert_eq!(next_tier(&config, Action::Generate, "reasoning"), None);
        assert_eq!(
            next_tier(&config, Action::Review, "flash").as_deref(),
            Some("coder")
        );
        assert_eq!(tier_label(&config, "pro"), "DeepSeek V4 Pro");
    }

    #[test]
    fn a_prompt_is_laid_out_once_per_tree_and_every_input_counts() {
        let engine = Engine::new(Config::default()).expect("an engine");
        let source = "fn a() {}\n\nfn total(values: &[i32]) -> i32 {\n    helper(values) + 1\n}\n";
        let lib = "pub fn helper(values: &[i32]) -> i32 {\n    values.len() as i32\n}\n";
        let rope = Rope::from_str(source);
        let at = source.find("helper").unwrap_or(0);
        let selection = rope.byte_to_char(at)..rope.byte_to_char(at + 6);
        let neighbour = |text: &str| syntax::Source {
            name: "src/util.rs".into(),
            parsed: syntax::parse(Lang::Rust, &Rope::from_str(text)).expect("a tree"),
        };
        let base = Job {
            tree: syntax::parse(Lang::Rust, &rope),
            neighbours: vec![neighbour(lib)],
            diagnostics: vec!["unused variable".into()],
            ..Job::new(
                Action::Explain,
                "src/lib.rs",
                "rust",
                rope.clone(),
                selection.clone(),
            )
        };
        let config = Config::default();
        let prompt = |config: &Config, job: &Job| {
            engine
                .prepare(config, job)
                .expect("a prompt")
                .prompt
                .messages
        };
        // Asked without a tree, and with a new tree: what a prompt of this job is.
        let fresh = |config: &Config, job: &Job| {
            let job = Job {
                tree: syntax::parse(Lang::Rust, &job.text),
                ..job.clone()
            };
            prompt(config, &job)
        };
        let first = prompt(&config, &base);
        assert!(
            format!("{first:?}").contains("values.len()"),
            "the neighbour is quoted"
        );
        // The second time on the same tree the text is not read again: a text that (against
        // the contract) differs from the tree's gets the prompt made the first time.
        let other_text = Job {
            text: Rope::from_str(&source.replace("+ 1", "+ 2")),
            ..base.clone()
        };
        assert_eq!(prompt(&config, &other_text), first);
        // Every other input makes a prompt of its own, the one a new tree makes.
        let mut tighter = Config::default();
        tighter.context.surrounding_lines = 0;
        let mut unredacted = Config::default();
        unredacted.privacy.redact_secrets = false;
        let variants = [
            (
                "diagnostics",
                Job {
                    diagnostics: vec!["shadowed".into()],
                    ..base.clone()
                },
                &config,
            ),
            (
                "selection",
                Job {
                    selection: selection.start..selection.end + 8,
                    ..base.clone()
                },
                &config,
            ),
            (
                "action",
                Job {
                    action: Action::Review,
                    ..base.clone()
                },
                &config,
            ),
            (
                "a neighbour's new tree",
                Job {
                    neighbours: vec![neighbour(&lib.replace("len()", "len() * 2"))],
                    ..base.clone()
                },
                &config,
            ),
            (
                "no neighbours",
                Job {
                    neighbours: Vec::new(),
                    ..base.clone()
                },
                &config,
            ),
            ("surrounding lines", base.clone(), &tighter),
        ];
        for (what, job, config) in variants {
            let got = prompt(config, &job);
            assert_ne!(got, first, "{what} changes the prompt");
            assert_eq!(
                got,
                fresh(config, &job),
                "{what}: as a new tree lays it out"
            );
        }
        // Redaction off changes nothing here (no secret), and is still its own entry.
        assert_eq!(prompt(&unredacted, &base), fresh(&unredacted, &base));
    }
}
