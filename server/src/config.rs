//! Configuration: every key declared once (type, default, documentation, who may set it), and the layering of sources.

mod error;
mod layer;
mod loader;
mod resolve;
pub mod schema;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use error::{ConfigError, ConfigErrors, Source};
pub use layer::{check_base_url, is_loopback_url, BaseUrlError, Layer};
pub use loader::{
    home_dir, user_config_path, workspace_config_path, Loaded, Loader, SourceInfo, SourceState,
    Sources, BASE_URL_ENV, MAX_FILE_BYTES,
};
pub use resolve::label_for;
use schema::{settings, Kind};

settings! {
    /// The effective configuration after all layers were combined and validated.
    pub struct Config {
        /// Where requests, and with them the API key, are sent: an OpenAI-compatible endpoint ending in `/v1`, e.g. `http://127.0.0.1:11434/v1` for Ollama; `CODETIER_BASE_URL` overrides it.
        base_url: String = "https://global-apis.com/v1".into(), User, Kind::BaseUrl;
        /// The environment variable that holds the API key.
        api_key_env: String = "GLOBAL_API_KEY".into(), User, Kind::EnvName;
        /// Deadline of one answer on the flash tier, and on any tier without a `budget_ms` of its own.
        latency_budget_ms: u64 = 2500, User, MS_BUDGET;
        /// After this long a command replies `{ "pending": true }` and delivers its answer later.
        command_reply_ms: u64 = 15_000, User, MS_BUDGET;
        /// Default bound on generated tokens per request.
        max_tokens: u32 = 1024, User, TOKENS;
        /// Hedged requests: a second request when the first token is late.
        hedge: HedgeConfig = HedgeConfig::default(), Any, Kind::Section(HedgeConfig::KEYS);
        /// Retries with jittered exponential backoff, inside the deadline.
        retry: RetryConfig = RetryConfig::default(), Any, Kind::Section(RetryConfig::KEYS);
        /// The circuit breaker per model.
        breaker: BreakerConfig = BreakerConfig::default(), Any, Kind::Section(BreakerConfig::KEYS);
        /// The model tiers, by name: model, price, request body, budget.
        tiers: BTreeMap<String, TierConfig> = default_tiers(), User, Kind::Map { keys: TierConfig::KEYS, entry: new_tier };
        /// Which tier each action asks first, and where it escalates.
        actions: ActionsConfig = ActionsConfig::default(), Any, Kind::Section(ActionsConfig::KEYS);
        /// The response cache.
        cache: CacheConfig = CacheConfig::default(), Any, Kind::Section(CacheConfig::KEYS);
        /// What is never sent, and what is masked in what is sent.
        privacy: PrivacyConfig = PrivacyConfig::default(), Any, Kind::Section(PrivacyConfig::KEYS);
        /// How much of the document goes into a prompt.
        context: ContextConfig = ContextConfig::default(), Any, Kind::Section(ContextConfig::KEYS);
        /// The server's log.
        log: LogConfig = LogConfig::default(), Any, Kind::Section(LogConfig::KEYS);
        /// Inline completions as you type.
        completion: CompletionConfig = CompletionConfig::default(), Any, Kind::Section(CompletionConfig::KEYS);
        /// The team tier: one Redis shared by a team's editors and CI for the cache, the day's spend, rate limits and cooldowns.
        team: TeamConfig = TeamConfig::default(), User, Kind::Section(TeamConfig::KEYS);
    }

    /// One model tier.
    pub struct TierConfig {
        /// The provider's model name.
        model: String = String::new(), User, Kind::Text;
        /// Human name shown in titles, e.g. "Flash" or "DeepSeek-R1"; follows the model unless chosen.
        label: String = String::new(), User, Kind::Text;
        /// Output price in USD per million tokens; a known model brings its own.
        output_usd_per_million: Option<f64> = None, User, Kind::Price;
        /// Merged into the JSON body of every request of this tier.
        extra_body: serde_json::Map<String, serde_json::Value> = serde_json::Map::new(), User, Kind::Body;
        /// Deadline for one answer on this tier; unset means `latency_budget_ms`.
        budget_ms: Option<u64> = None, User, MS_BUDGET;
        /// Bound on generated tokens per request of this tier; unset means `max_tokens`.
        max_tokens: Option<u32> = None, User, TOKENS;
        /// Model to route to while this tier's model has its circuit breaker open.
        fallback: Option<String> = None, User, Kind::Text;
        /// Upstream requests per minute to this tier's model, shared by every process on the team's Redis (a token bucket there); unset means no limit.
        requests_per_minute: Option<u32> = None, User, Kind::Uint { min: 1, max: 1_000_000 };
    }

    /// Hedged requests.
    pub struct HedgeConfig {
        /// Send a second request when the first token is later than the observed p90.
        enabled: bool = true, User, Kind::Bool;
        /// Floor of the hedge delay, in milliseconds.
        min_delay_ms: u64 = 150, User, Kind::Uint { min: 0, max: 60_000 };
        /// Ceiling of the hedge delay, in milliseconds.
        max_delay_ms: u64 = 1500, User, Kind::Uint { min: 0, max: 600_000 };
        /// Hedge requests to a loopback `base_url` too: local servers (Ollama, llama.cpp) run one request at a time, so by default a hedge is never sent to them.
        loopback: bool = false, User, Kind::Bool;
    }

    /// Retries.
    pub struct RetryConfig {
        /// Attempts per request, the first included.
        max_attempts: u32 = 3, User, Kind::Uint { min: 1, max: 10 };
        /// First backoff delay, in milliseconds; it doubles each attempt, with jitter.
        base_delay_ms: u64 = 100, User, Kind::Uint { min: 0, max: 60_000 };
    }

    /// The circuit breaker.
    pub struct BreakerConfig {
        /// Consecutive failures that open a model's breaker.
        failure_threshold: u32 = 5, User, Kind::Uint { min: 1, max: 1000 };
        /// How long an open breaker routes to the fallback, in milliseconds.
        open_ms: u64 = 30_000, User, Kind::Uint { min: 100, max: 3_600_000 };
    }

    /// The three actions.
    pub struct ActionsConfig {
        /// Explain bug.
        explain: ActionConfig = action(&["reasoning"]), Any, Kind::Section(ActionConfig::KEYS);
        /// Generate function.
        generate: ActionConfig = ActionConfig { auto_escalate: true, ..action(&["pro", "reasoning"]) }, Any, Kind::Section(ActionConfig::KEYS);
        /// Review selection.
        review: ActionConfig = action(&["coder", "reasoning"]), Any, Kind::Section(ActionConfig::KEYS);
    }

    /// One action.
    pub struct ActionConfig {
        /// The tier asked first.
        tier: String = "flash".into(), Any, Kind::TierName;
        /// The tiers offered as escalations, in order.
        escalate: Vec<String> = Vec::new(), Any, Kind::TierNames;
        /// When an answer fails its check (it does not parse, or does not define what was asked), ask the next tier of `escalate` once, and count both costs.
        auto_escalate: bool = false, User, Kind::Bool;
    }

    /// The response cache.
    pub struct CacheConfig {
        /// Cache answers at all.
        enabled: bool = true, User, Kind::Bool;
        /// Entries kept in memory.
        memory_entries: usize = 512, User, Kind::Uint { min: 0, max: 10_000_000 };
        /// Bytes kept in memory.
        memory_bytes: usize = 32 * 1024 * 1024, User, Kind::Uint { min: 0, max: 1 << 34 };
        /// The disk cache's directory; unset means `$XDG_CACHE_HOME/codetier` (or `~/.cache/codetier`).
        dir: Option<PathBuf> = None, User, Kind::Path;
        /// Days an answer stays on disk.
        ttl_days: u32 = 7, User, Kind::Uint { min: 1, max: 3650 };
        /// Bound on the disk cache's size, in bytes.
        max_disk_bytes: u64 = 256 * 1024 * 1024, User, Kind::Uint { min: 0, max: 1 << 40 };
    }

    /// Privacy.
    pub struct PrivacyConfig {
        /// Files never sent to the model (globs, matched without regard to case, on the path and on the file it links to).
        exclude: Vec<String> = DEFAULT_EXCLUDE.iter().map(|g| (*g).to_owned()).collect(), WorkspaceMayAdd, Kind::Globs;
        /// Mask secrets in everything sent.
        redact_secrets: bool = true, WorkspaceMayEnable, Kind::Bool;
    }

    /// Prompt context.
    pub struct ContextConfig {
        /// Rough bound on prompt tokens (4 characters a token).
        token_budget: usize = 3000, Any, Kind::Uint { min: 100, max: 1_000_000 };
        /// Lines of context wanted on each side of the selection, budget permitting.
        surrounding_lines: usize = 20, Any, Kind::Uint { min: 0, max: 10_000 };
    }

    /// Inline completions. A workspace may only turn them off; everything else is the user's.
    pub struct CompletionConfig {
        /// Offer `textDocument/inlineCompletion` where the editor declares it (VS Code, Neovim 0.12).
        enabled: bool = true, WorkspaceMayDisable, Kind::Bool;
        /// Also offer the suggestion as one `textDocument/completion` item (Helix, Neovim before 0.12).
        menu: bool = false, User, Kind::Bool;
        /// The tier completions are asked on.
        tier: String = "flash".into(), User, Kind::TierName;
        /// `chat`: `/chat/completions` with the text before and after the cursor; `fim`: `/completions` with `prompt` and `suffix` (DeepSeek FIM beta, llama.cpp, Ollama).
        mode: String = "chat".into(), User, Kind::Choice(COMPLETION_MODES);
        /// Quiet time after a request before anything is sent, in milliseconds; a newer request or an edit in the meantime sends nothing.
        debounce_ms: u64 = 75, User, Kind::Uint { min: 0, max: 5_000 };
        /// A suggestion not ready after this many milliseconds is dropped without a word.
        budget_ms: u64 = 1500, User, Kind::Uint { min: 100, max: 60_000 };
        /// Bound on generated tokens per suggestion.
        max_tokens: u32 = 96, User, Kind::Uint { min: 1, max: 4096 };
    }

    /// The team tier (Redis).
    pub struct TeamConfig {
        /// The environment variable that holds the team's `redis://` or `rediss://` URL (password inside); unset means no team tier. The URL is never logged or shown.
        redis_url_env: Option<String> = None, User, Kind::EnvName;
        /// Prefix of every Redis key codetier writes, so several teams or projects can share one Redis.
        key_prefix: String = "codetier".into(), User, Kind::Text;
        /// Share answers through Redis (lookups go memory, disk, then Redis; writes go to all three).
        share_cache: bool = true, User, Kind::Bool;
        /// Spend per UTC day, in USD, shared by every process on this Redis; once reached, new upstream requests are refused (cached answers still work). Unset means no cap.
        daily_budget_usd: Option<f64> = None, User, Kind::Usd;
        /// How long one action may wait on Redis, all its calls together, in milliseconds; past it the action goes on with the local tiers and Redis is left alone for 3 s.
        timeout_ms: u64 = 50, User, Kind::Uint { min: 1, max: 10_000 };
    }

    /// The server's log.
    pub struct LogConfig {
        /// One of off, error, warn, info, debug, trace.
        level: String = "info".into(), User, Kind::LogLevel;
        /// Also log to this file.
        file: Option<PathBuf> = None, User, Kind::Path;
    }
}

/// Files never sent by default. Only the user may remove one of them.
pub const DEFAULT_EXCLUDE: &[&str] = &[".env", ".env.*", "*.pem", "*.key", "**/secrets/**"];

/// Prompt modes accepted by `completion.mode`.
pub const COMPLETION_MODES: &[&str] = &["chat", "fim"];

/// Log levels accepted by `log.level` (the `RUST_LOG` / `CODETIER_LOG` variables take full directives).
pub const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Bounds of a deadline in milliseconds.
const MS_BUDGET: Kind = Kind::Uint {
    min: 100,
    max: 600_000,
};
/// Bounds of a token count.
const TOKENS: Kind = Kind::Uint {
    min: 1,
    max: 1_000_000,
};

impl Config {
    pub fn action(&self, action: crate::action::Action) -> &ActionConfig {
        use crate::action::Action;
        match action {
            Action::Explain => &self.actions.explain,
            Action::Generate => &self.actions.generate,
            Action::Review => &self.actions.review,
        }
    }

    /// The one check of a tier name: its configuration, or an error naming the tiers there are.
    pub fn tier(&self, name: &str) -> Result<&TierConfig, UnknownTier> {
        self.tiers.get(name).ok_or_else(|| UnknownTier {
            name: name.to_owned(),
            known: self.tiers.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Deadline of one answer on `tier`.
    pub fn budget_ms(&self, tier: &str) -> u64 {
        self.tiers
            .get(tier)
            .and_then(|t| t.budget_ms)
            .unwrap_or(self.latency_budget_ms)
    }
}

/// A tier name that is not configured; `Display` is what the user reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{name}`: configured tiers are {known} (or define it under [tiers.{name}])")]
pub struct UnknownTier {
    pub name: String,
    /// The configured tiers, comma-separated.
    pub known: String,
}

/// A model whose output price we know, shipped as a built-in fact.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnownModel {
    pub model: &'static str,
    pub label: &'static str,
    pub output_usd_per_million: f64,
}

/// Output prices (USD per million tokens) from the design. No input prices are known.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        model: "deepseek-v4-flash",
        label: "DeepSeek V4 Flash",
        output_usd_per_million: 0.25,
    },
    KnownModel {
        model: "deepseek-coder",
        label: "DeepSeek Coder",
        output_usd_per_million: 0.25,
    },
    KnownModel {
        model: "qwen3-coder-30b",
        label: "Qwen3-Coder-30B",
        output_usd_per_million: 0.35,
    },
    KnownModel {
        model: "deepseek-v4-pro",
        label: "DeepSeek V4 Pro",
        output_usd_per_million: 0.78,
    },
    KnownModel {
        model: "deepseek-r1",
        label: "DeepSeek-R1",
        output_usd_per_million: 2.50,
    },
    KnownModel {
        model: "kimi-k2.5",
        label: "Kimi K2.5",
        output_usd_per_million: 3.00,
    },
    KnownModel {
        model: "glm-5",
        label: "GLM-5",
        output_usd_per_million: 1.92,
    },
    KnownModel {
        model: "qwen3-32b",
        label: "Qwen3-32B",
        output_usd_per_million: 0.28,
    },
    KnownModel {
        model: "hunyuan-turbo",
        label: "Hunyuan Turbo",
        output_usd_per_million: 0.57,
    },
    KnownModel {
        model: "ga-standard",
        label: "GA Standard",
        output_usd_per_million: 0.20,
    },
];

pub fn known_model(model: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|k| k.model == model)
}

fn tier(model: &str, label: &str, budget_ms: Option<u64>) -> TierConfig {
    TierConfig {
        model: model.to_owned(),
        label: label.to_owned(),
        output_usd_per_million: known_model(model).map(|k| k.output_usd_per_million),
        budget_ms,
        ..TierConfig::default()
    }
}

/// The design's four tiers.
fn default_tiers() -> BTreeMap<String, TierConfig> {
    let mut flash = tier("deepseek-v4-flash", "Flash", None);
    // DeepSeek V4 thinks before answering unless told not to, which would spend the budget.
    flash
        .extra_body
        .insert("thinking".into(), serde_json::json!({ "type": "disabled" }));
    flash.fallback = Some("deepseek-coder".into());
    // The budget covers the whole answer: at 100-200 tokens/s, 512 tokens fit in it.
    flash.max_tokens = Some(512);
    let mut reasoning = tier("deepseek-r1", "DeepSeek-R1", Some(60_000));
    reasoning.max_tokens = Some(8192);
    BTreeMap::from([
        ("flash".to_owned(), flash),
        (
            "coder".to_owned(),
            tier("qwen3-coder-30b", "Qwen3-Coder-30B", Some(30_000)),
        ),
        (
            "pro".to_owned(),
            tier("deepseek-v4-pro", "DeepSeek V4 Pro", Some(30_000)),
        ),
        ("reasoning".to_owned(), reasoning),
    ])
}

/// A tier a source adds, before its keys apply: it has no model yet.
fn new_tier() -> serde_json::Value {
    serde_json::to_value(TierConfig::default()).unwrap_or_default()
}

fn action(escalate: &[&str]) -> ActionConfig {
    ActionConfig {
        tier: "flash".into(),
        escalate: escalate.iter().map(|s| (*s).to_owned()).collect(),
        auto_escalate: false,
    }
}

#[cfg(test)]
mod tests;
