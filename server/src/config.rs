//! Configuration: the schema, its built-in defaults, and the layering of sources.

mod error;
mod layer;
mod loader;
mod resolve;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use error::{ConfigError, ConfigErrors, Source};
pub use layer::{
    check_base_url, ActionLayer, ActionsLayer, BreakerLayer, CacheLayer, ContextLayer, HedgeLayer,
    Layer, LogLayer, PrivacyLayer, RetryLayer, TierLayer, LOG_LEVELS, WORKSPACE_FORBIDDEN,
};
pub use loader::{
    home_dir, user_config_path, workspace_config_path, Loader, SourceInfo, SourceState,
    BASE_URL_ENV,
};
pub use resolve::label_for;

/// The effective configuration after all layers were combined and validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub base_url: String,
    pub api_key_env: String,
    /// Budget of the flash tier (and of any tier without its own `budget_ms`... see `budget_ms`).
    pub latency_budget_ms: u64,
    /// After this long a command replies `{ "pending": true }` and delivers its answer later.
    pub command_reply_ms: u64,
    /// Default bound on generated tokens per request.
    pub max_tokens: u32,
    pub hedge: HedgeConfig,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub tiers: BTreeMap<String, TierConfig>,
    pub actions: ActionsConfig,
    pub cache: CacheConfig,
    pub privacy: PrivacyConfig,
    pub context: ContextConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierConfig {
    pub model: String,
    /// Human name shown in titles, e.g. "Flash" or "DeepSeek-R1".
    pub label: String,
    pub output_usd_per_million: Option<f64>,
    /// Merged into the JSON body of every request of this tier.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Deadline for one answer on this tier; `None` means `latency_budget_ms`.
    pub budget_ms: Option<u64>,
    pub max_tokens: Option<u32>,
    /// Model to route to while this tier's model has its circuit breaker open.
    pub fallback: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HedgeConfig {
    pub enabled: bool,
    /// Floor and ceiling of the hedge delay (the observed p90 time to first token).
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionConfig {
    pub tier: String,
    pub escalate: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionsConfig {
    pub explain: ActionConfig,
    pub generate: ActionConfig,
    pub review: ActionConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheConfig {
    pub enabled: bool,
    pub memory_entries: usize,
    pub memory_bytes: usize,
    /// `None` means `$XDG_CACHE_HOME/codetier` (or `~/.cache/codetier`).
    pub dir: Option<PathBuf>,
    pub ttl_days: u32,
    pub max_disk_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivacyConfig {
    pub exclude: Vec<String>,
    pub redact_secrets: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextConfig {
    /// Rough bound on prompt tokens (4 characters a token).
    pub token_budget: usize,
    pub surrounding_lines: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub file: Option<PathBuf>,
}

impl Config {
    pub fn action(&self, action: crate::engine::Action) -> &ActionConfig {
        use crate::engine::Action;
        match action {
            Action::Explain => &self.actions.explain,
            Action::Generate => &self.actions.generate,
            Action::Review => &self.actions.review,
        }
    }

    /// Deadline of one answer on `tier`.
    pub fn budget_ms(&self, tier: &str) -> u64 {
        self.tiers
            .get(tier)
            .and_then(|t| t.budget_ms)
            .unwrap_or(self.latency_budget_ms)
    }
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
        extra_body: serde_json::Map::new(),
        budget_ms,
        max_tokens: None,
        fallback: None,
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut flash = tier("deepseek-v4-flash", "Flash", None);
        // DeepSeek V4 thinks before answering unless told not to, which would spend the budget.
        flash
            .extra_body
            .insert("thinking".into(), serde_json::json!({ "type": "disabled" }));
        flash.fallback = Some("deepseek-coder".into());
        // The budget covers the whole answer: at 100-200 tokens/s, 512 tokens fit in it.
        flash.max_tokens = Some(512);
        let mut tiers = BTreeMap::new();
        tiers.insert("flash".into(), flash);
        tiers.insert(
            "coder".into(),
            tier("qwen3-coder-30b", "Qwen3-Coder-30B", Some(30_000)),
        );
        tiers.insert(
            "pro".into(),
            tier("deepseek-v4-pro", "DeepSeek V4 Pro", Some(30_000)),
        );
        let mut reasoning = tier("deepseek-r1", "DeepSeek-R1", Some(60_000));
        reasoning.max_tokens = Some(8192);
        tiers.insert("reasoning".into(), reasoning);
        let action = |escalate: &[&str]| ActionConfig {
            tier: "flash".into(),
            escalate: escalate.iter().map(|s| (*s).to_owned()).collect(),
        };
        Config {
            base_url: "https://global-apis.com/v1".into(),
            api_key_env: "GLOBAL_API_KEY".into(),
            latency_budget_ms: 2500,
            command_reply_ms: 15_000,
            max_tokens: 1024,
            hedge: HedgeConfig {
                enabled: true,
                min_delay_ms: 150,
                max_delay_ms: 1500,
            },
            retry: RetryConfig {
                max_attempts: 3,
                base_delay_ms: 100,
            },
            breaker: BreakerConfig {
                failure_threshold: 5,
                open_ms: 30_000,
            },
            tiers,
            actions: ActionsConfig {
                explain: action(&["reasoning"]),
                generate: action(&["pro", "reasoning"]),
                review: action(&["coder", "reasoning"]),
            },
            cache: CacheConfig {
                enabled: true,
                memory_entries: 512,
                memory_bytes: 32 * 1024 * 1024,
                dir: None,
                ttl_days: 7,
                max_disk_bytes: 256 * 1024 * 1024,
            },
            privacy: PrivacyConfig {
                exclude: [".env", "*.pem", "*.key", "**/secrets/**"]
                    .map(String::from)
                    .to_vec(),
                redact_secrets: true,
            },
            context: ContextConfig {
                token_budget: 3000,
                surrounding_lines: 20,
            },
            log: LogConfig {
                level: "info".into(),
                file: None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
