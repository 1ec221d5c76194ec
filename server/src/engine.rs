//! The one entry point that runs an AI action, shared by the LSP layer and the CLI.

pub use crate::action::Action;

use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ropey::Rope;
use tokio::sync::mpsc::UnboundedSender;

use crate::cache::{self, Cache};
use crate::config::Config;
use crate::prompts;
use crate::provider::{Endpoint, Provider, TokenUsage};
use crate::render::{self, Explanation, Finding};
use crate::router::{Answer, RouteError, RouteEvent, RouteRequest, Router};
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
}

/// What the user sees while a job runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The prompt is built and about to be sent (or answered from the cache).
    Asking {
        tier: String,
        model: String,
        /// Secrets masked in the prompt.
        redactions: usize,
        /// Set when the budget cut the selection or its context: which lines were sent.
        coverage_note: Option<String>,
    },
    Tokens {
        count: usize,
    },
    Retrying {
        attempt: u32,
        reason: String,
    },
    Hedged,
    FellBack {
        model: String,
    },
}

/// The result of a job, before any protocol turns it into edits or diagnostics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub action: Action,
    pub tier: String,
    pub model: String,
    pub cached: bool,
    pub latency_ms: u64,
    pub usage: TokenUsage,
    pub cost_usd: Option<f64>,
    pub text: String,
    #[serde(skip)]
    pub reasoning: String,
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
}

/// Why a job produced no answer. `Display` is what the user reads.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "codetier will not send {path} to the model: it matches privacy.exclude ({pattern_hint})"
    )]
    Excluded { path: String, pattern_hint: String },
    #[error("unknown tier `{0}`: configured tiers are {1}")]
    UnknownTier(String, String),
    #[error("the selection is empty: select some code first")]
    EmptySelection,
    #[error("{0}")]
    Route(#[from] RouteError),
    #[error("the model's answer was empty: try again or escalate to a premium tier")]
    EmptyAnswer,
    #[error("cancelled")]
    Cancelled,
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
}

impl Engine {
    /// Builds the engine; fails only when the endpoint itself is unusable.
    pub fn new(config: Config) -> Result<Engine, crate::provider::ProviderError> {
        let config = Arc::new(config);
        let usage = Arc::new(Ledger::new());
        let cache = Arc::new(Cache::open(&config.cache));
        if let Some(warning) = cache.warning() {
            tracing::warn!("{warning}");
        }
        let router = Arc::new(Self::router(&config, &usage)?);
        Ok(Engine {
            live: RwLock::new(Live { config, router }),
            cache: RwLock::new(cache),
            usage,
        })
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
        if live.config.cache != config.cache {
            let cache = Arc::new(Cache::open(&config.cache));
            if let Some(warning) = cache.warning() {
                tracing::warn!("{warning}");
            }
            *self.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        }
        if endpoint_changed {
            live.router = Arc::new(Self::router(&config, &self.usage)?);
        } else {
            live.router.set_config(config.clone());
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
        let Some(tier) = config.tiers.get(&tier_name) else {
            let known: Vec<&str> = config.tiers.keys().map(String::as_str).collect();
            return Err(EngineError::UnknownTier(tier_name, known.join(", ")));
        };
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
        let prompt = prompts::build(&prompts::ContextInput {
            action: job.action,
            file_name: &display_path(&job.file_name),
            language_id: &job.language_id,
            text: &job.text,
            selection: job.selection.clone(),
            diagnostics: &job.diagnostics,
            token_budget: config.context.token_budget,
            surrounding_lines: config.context.surrounding_lines,
            redact: config.privacy.redact_secrets,
        });
        let prompt_text = serde_json::to_string(&prompt.messages).unwrap_or_default();
        let key = cache::key(
            job.action.as_str(),
            &tier.model,
            prompts::TEMPLATE_VERSION,
            &prompt_text,
        );
        Ok(Prepared {
            tier_name,
            model: tier.model.clone(),
            prompt,
            key,
        })
    }

    /// Runs one job to completion. Dropping the future cancels the upstream request
    /// (unless an identical request from elsewhere still waits for it).
    pub async fn run(
        &self,
        job: Job,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let config = self.config();
        let Prepared {
            tier_name,
            model,
            prompt,
            key,
        } = self.prepare(&config, &job)?;
        if let Some(tx) = &progress {
            let _ = tx.send(Progress::Asking {
                tier: tier_name.clone(),
                model: model.clone(),
                redactions: prompt.redactions,
                coverage_note: prompt.coverage.note.clone(),
            });
        }

        let router = self.router_handle();
        let request = RouteRequest {
            tier: tier_name.clone(),
            messages: prompt.messages.clone(),
            max_tokens: None,
        };
        let compute_progress = progress.clone();
        let compute = async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let forward = async {
                let mut tokens = 0usize;
                while let Some(event) = rx.recv().await {
                    let Some(out) = &compute_progress else {
                        continue;
                    };
                    let sent = match event {
                        RouteEvent::Token(t) => {
                            tokens += t.len().div_ceil(4).max(1);
                            Progress::Tokens { count: tokens }
                        }
                        RouteEvent::Reasoning(_) => continue,
                        RouteEvent::Retrying { attempt, reason } => {
                            Progress::Retrying { attempt, reason }
                        }
                        RouteEvent::Hedged => Progress::Hedged,
                        RouteEvent::FellBack { model } => Progress::FellBack { model },
                    };
                    let _ = out.send(sent);
                }
            };
            let ask = async move { router.ask(request, Some(tx)).await };
            let (answer, ()) = tokio::join!(ask, forward);
            let answer: Answer = answer.map_err(EngineError::Route)?;
            if answer.text.trim().is_empty() {
                return Err(EngineError::EmptyAnswer);
            }
            Ok(cache::Entry {
                text: answer.text,
                reasoning: answer.reasoning,
                tier: answer.tier,
                model: answer.model,
                usage: answer.usage,
                cost_usd: answer.cost_usd,
                created_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            })
        };
        let cache = self.cache();
        let (entry, cached) = if config.cache.enabled {
            cache.share(key, job.fresh, compute).await?
        } else {
            (compute.await?, false)
        };
        if cached {
            let saved = crate::usage::cost_usd(
                entry.usage.output_tokens,
                price_of(&config, &tier_name, &entry.model),
            );
            self.usage
                .record_cache_hit(&tier_name, &entry.model, entry.usage, saved);
        }
        Ok(finish(
            job.action, &tier_name, entry, cached, started, &prompt,
        ))
    }
}

/// A checked job, ready to send.
struct Prepared {
    tier_name: String,
    model: String,
    prompt: prompts::Prompt,
    key: cache::CacheKey,
}

fn price_of(config: &Config, tier: &str, model: &str) -> Option<f64> {
    match config.tiers.get(tier) {
        Some(t) if t.model == model => t.output_usd_per_million,
        _ => crate::config::known_model(model).map(|k| k.output_usd_per_million),
    }
}

fn finish(
    action: Action,
    tier: &str,
    entry: cache::Entry,
    cached: bool,
    started: Instant,
    prompt: &prompts::Prompt,
) -> Outcome {
    let mut outcome = Outcome {
        action,
        tier: tier.to_owned(),
        model: entry.model,
        cached,
        latency_ms: started.elapsed().as_millis() as u64,
        usage: entry.usage,
        cost_usd: if cached { Some(0.0) } else { entry.cost_usd },
        text: entry.text,
        reasoning: entry.reasoning,
        findings: Vec::new(),
        explanation: None,
        code: None,
        selection_lines: prompt.selection_lines,
        redactions: prompt.redactions,
        coverage: prompt.coverage.clone(),
    };
    match action {
        Action::Explain => outcome.explanation = Some(render::parse_explanation(&outcome.text)),
        // The model saw only the covered lines: findings are clamped into them.
        Action::Review => {
            outcome.findings = render::parse_findings(&outcome.text, prompt.coverage.covered_lines)
        }
        Action::Generate => outcome.code = Some(render::extract_code(&outcome.text)),
    }
    outcome
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
