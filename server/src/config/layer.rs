//! One source's settings as an all-optional layer, checked key by key against the schema.
//!
//! Sources are parsed into a `serde_json::Value` first (TOML is converted) and walked by hand,
//! so that every unknown key and bad value is reported with its full dotted name, and all the
//! problems of a source are collected at once instead of stopping at the first.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::{ConfigError, ConfigErrors, Source};

/// Settings of one source. `None` (or an empty map) means "not set here": lower layers show through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub latency_budget_ms: Option<u64>,
    pub command_reply_ms: Option<u64>,
    pub max_tokens: Option<u32>,
    pub hedge: HedgeLayer,
    pub retry: RetryLayer,
    pub breaker: BreakerLayer,
    pub tiers: BTreeMap<String, TierLayer>,
    pub actions: ActionsLayer,
    pub cache: CacheLayer,
    pub privacy: PrivacyLayer,
    pub context: ContextLayer,
    pub log: LogLayer,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HedgeLayer {
    pub enabled: Option<bool>,
    pub min_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetryLayer {
    pub max_attempts: Option<u32>,
    pub base_delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BreakerLayer {
    pub failure_threshold: Option<u32>,
    pub open_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierLayer {
    pub model: Option<String>,
    pub label: Option<String>,
    pub output_usd_per_million: Option<f64>,
    /// Merged key by key into the tier's `extra_body`; a JSON `null` value removes that key.
    pub extra_body: Option<Map<String, Value>>,
    pub budget_ms: Option<u64>,
    pub max_tokens: Option<u32>,
    pub fallback: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionLayer {
    pub tier: Option<String>,
    pub escalate: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionsLayer {
    pub explain: ActionLayer,
    pub generate: ActionLayer,
    pub review: ActionLayer,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheLayer {
    pub enabled: Option<bool>,
    pub memory_entries: Option<usize>,
    pub memory_bytes: Option<usize>,
    pub dir: Option<PathBuf>,
    pub ttl_days: Option<u32>,
    pub max_disk_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrivacyLayer {
    pub exclude: Option<Vec<String>>,
    pub redact_secrets: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContextLayer {
    pub token_budget: Option<usize>,
    pub surrounding_lines: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogLayer {
    pub level: Option<String>,
    pub file: Option<PathBuf>,
}

/// Keys a workspace file may not set, and why. A repository's `.codetier.toml` comes with the
/// code: it must not decide where requests (and with them the API key) are sent, nor make us
/// write files wherever it likes.
pub const WORKSPACE_FORBIDDEN: &[(&str, &str)] = &[
    (
        "base_url",
        "decides where requests and the API key are sent",
    ),
    ("api_key_env", "decides which secret is sent with requests"),
    ("log.file", "decides where codetier writes files"),
    ("cache.dir", "decides where codetier writes files"),
];

/// Log levels accepted by `log.level` (the `RUST_LOG` / `CODETIER_LOG` variables take full directives).
pub const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

impl Layer {
    /// Parses a TOML file's text.
    pub fn from_toml(text: &str, source: Source) -> Result<Layer, ConfigErrors> {
        let table = text.parse::<toml::Table>().map_err(|e| {
            ConfigErrors::one(ConfigError::new(&source, "", toml_error_message(text, &e)))
        })?;
        Layer::from_json(&toml_to_json(toml::Value::Table(table)), source)
    }

    /// Parses editor settings (initializationOptions, didChangeConfiguration). JSON `null`
    /// anywhere means "not set".
    ///
    /// For a [`Source::WorkspaceFile`] the keys in [`WORKSPACE_FORBIDDEN`] are errors, so a
    /// workspace layer that tries to set them is refused whole (see `Loader`).
    pub fn from_json(value: &Value, source: Source) -> Result<Layer, ConfigErrors> {
        let mut walker = Walker {
            source: &source,
            errors: Vec::new(),
        };
        let layer = walker.layer(value);
        if matches!(source, Source::WorkspaceFile(_)) {
            for (key, why) in WORKSPACE_FORBIDDEN {
                if layer.sets(key) {
                    walker.error(
                        key,
                        format!(
                            "not allowed in a workspace file: it {why}, and .codetier.toml comes \
                             with the code; set it in the user config file or the editor settings"
                        ),
                    );
                }
            }
        }
        ConfigErrors::check(walker.errors, layer)
    }

    /// True when this layer sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == Layer::default()
    }

    /// True when this layer sets `key`, one of the [`WORKSPACE_FORBIDDEN`] keys.
    fn sets(&self, key: &str) -> bool {
        match key {
            "base_url" => self.base_url.is_some(),
            "api_key_env" => self.api_key_env.is_some(),
            "log.file" => self.log.file.is_some(),
            "cache.dir" => self.cache.dir.is_some(),
            _ => false,
        }
    }
}

/// Checks a base URL: http or https, with a host; plain http only to a loopback host.
/// Returns it without a trailing slash.
pub fn check_base_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL ({e}): {url:?}"))?;
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("the URL has no host: {url:?}"));
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Whatever prints the base URL (logs, doctor) would print these too.
        return Err("credentials in the URL are refused; the key comes from `api_key_env`".into());
    }
    // IPv6 hosts come bracketed (`[::1]`); the URL parser already normalised IPv4 forms.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "plain http is refused unless the host is loopback (127.0.0.1, ::1, localhost), \
                 because the API key would travel unencrypted; use https: {url:?}"
            ))
        }
        other => {
            return Err(format!(
                "expected an http or https URL, got scheme {other:?}"
            ))
        }
    }
    Ok(url.trim_end_matches('/').to_owned())
}

const TOP_KEYS: &[&str] = &[
    "base_url",
    "api_key_env",
    "latency_budget_ms",
    "command_reply_ms",
    "max_tokens",
    "hedge",
    "retry",
    "breaker",
    "tiers",
    "actions",
    "cache",
    "privacy",
    "context",
    "log",
];
const HEDGE_KEYS: &[&str] = &["enabled", "min_delay_ms", "max_delay_ms"];
const RETRY_KEYS: &[&str] = &["max_attempts", "base_delay_ms"];
const BREAKER_KEYS: &[&str] = &["failure_threshold", "open_ms"];
const TIER_KEYS: &[&str] = &[
    "model",
    "label",
    "output_usd_per_million",
    "extra_body",
    "budget_ms",
    "max_tokens",
    "fallback",
];
const ACTIONS_KEYS: &[&str] = &["explain", "generate", "review"];
const ACTION_KEYS: &[&str] = &["tier", "escalate"];
const CACHE_KEYS: &[&str] = &[
    "enabled",
    "memory_entries",
    "memory_bytes",
    "dir",
    "ttl_days",
    "max_disk_bytes",
];
const PRIVACY_KEYS: &[&str] = &["exclude", "redact_secrets"];
const CONTEXT_KEYS: &[&str] = &["token_budget", "surrounding_lines"];
const LOG_KEYS: &[&str] = &["level", "file"];
/// Request fields codetier sets itself; `extra_body` may not override them.
const RESERVED_BODY_KEYS: &[&str] = &["model", "messages", "stream"];

const MS_BUDGET: (u64, u64) = (100, 600_000);
const TOKENS: (u64, u64) = (1, 1_000_000);

/// Walks a settings value against the schema, collecting errors with dotted keys.
struct Walker<'s> {
    source: &'s Source,
    errors: Vec<ConfigError>,
}

impl Walker<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.source, key, message));
    }

    fn layer(&mut self, value: &Value) -> Layer {
        let mut l = Layer::default();
        if value.is_null() {
            return l;
        }
        let Some(map) = self.table("", value, TOP_KEYS) else {
            return l;
        };
        l.base_url = self.field(map, "", "base_url", |w, k, v| {
            let s = w.string(k, v)?;
            check_base_url(&s).map_err(|m| w.error(k, m)).ok()
        });
        l.api_key_env = self.field(map, "", "api_key_env", Walker::env_name);
        l.latency_budget_ms = self.field(map, "", "latency_budget_ms", |w, k, v| {
            w.uint(k, v, MS_BUDGET)
        });
        l.command_reply_ms = self.field(map, "", "command_reply_ms", |w, k, v| {
            w.uint(k, v, MS_BUDGET)
        });
        l.max_tokens = self.field(map, "", "max_tokens", |w, k, v| w.u32(k, v, TOKENS));
        if let Some(m) = self.section(map, "hedge", HEDGE_KEYS) {
            l.hedge.enabled = self.field(m, "hedge", "enabled", Walker::boolean);
            l.hedge.min_delay_ms = self.field(m, "hedge", "min_delay_ms", |w, k, v| {
                w.uint(k, v, (0, 60_000))
            });
            l.hedge.max_delay_ms = self.field(m, "hedge", "max_delay_ms", |w, k, v| {
                w.uint(k, v, (0, 600_000))
            });
        }
        if let Some(m) = self.section(map, "retry", RETRY_KEYS) {
            l.retry.max_attempts =
                self.field(m, "retry", "max_attempts", |w, k, v| w.u32(k, v, (1, 10)));
            l.retry.base_delay_ms = self.field(m, "retry", "base_delay_ms", |w, k, v| {
                w.uint(k, v, (0, 60_000))
            });
        }
        if let Some(m) = self.section(map, "breaker", BREAKER_KEYS) {
            l.breaker.failure_threshold =
                self.field(m, "breaker", "failure_threshold", |w, k, v| {
                    w.u32(k, v, (1, 1000))
                });
            l.breaker.open_ms = self.field(m, "breaker", "open_ms", |w, k, v| {
                w.uint(k, v, (100, 3_600_000))
            });
        }
        if let Some(tiers) = map.get("tiers").filter(|v| !v.is_null()) {
            l.tiers = self.tiers(tiers);
        }
        if let Some(m) = self.section(map, "actions", ACTIONS_KEYS) {
            l.actions.explain = self.action(m, "explain");
            l.actions.generate = self.action(m, "generate");
            l.actions.review = self.action(m, "review");
        }
        if let Some(m) = self.section(map, "cache", CACHE_KEYS) {
            l.cache.enabled = self.field(m, "cache", "enabled", Walker::boolean);
            l.cache.memory_entries = self.field(m, "cache", "memory_entries", |w, k, v| {
                w.usize(k, v, (0, 10_000_000))
            });
            l.cache.memory_bytes = self.field(m, "cache", "memory_bytes", |w, k, v| {
                w.usize(k, v, (0, 1 << 34))
            });
            l.cache.dir = self.field(m, "cache", "dir", Walker::path).flatten();
            l.cache.ttl_days = self.field(m, "cache", "ttl_days", |w, k, v| w.u32(k, v, (1, 3650)));
            l.cache.max_disk_bytes = self.field(m, "cache", "max_disk_bytes", |w, k, v| {
                w.uint(k, v, (0, 1 << 40))
            });
        }
        if let Some(m) = self.section(map, "privacy", PRIVACY_KEYS) {
            l.privacy.exclude = self.field(m, "privacy", "exclude", Walker::globs);
            l.privacy.redact_secrets = self.field(m, "privacy", "redact_secrets", Walker::boolean);
        }
        if let Some(m) = self.section(map, "context", CONTEXT_KEYS) {
            l.context.token_budget = self.field(m, "context", "token_budget", |w, k, v| {
                w.usize(k, v, (100, 1_000_000))
            });
            l.context.surrounding_lines =
                self.field(m, "context", "surrounding_lines", |w, k, v| {
                    w.usize(k, v, (0, 10_000))
                });
        }
        if let Some(m) = self.section(map, "log", LOG_KEYS) {
            l.log.level = self.field(m, "log", "level", Walker::log_level);
            l.log.file = self.field(m, "log", "file", Walker::path).flatten();
        }
        l
    }

    fn tiers(&mut self, value: &Value) -> BTreeMap<String, TierLayer> {
        let mut tiers = BTreeMap::new();
        let Value::Object(map) = value else {
            self.error(
                "tiers",
                format!("expected a table of tiers, got {}", describe(value)),
            );
            return tiers;
        };
        for (name, value) in map {
            let prefix = format!("tiers.{name}");
            if !is_name(name) {
                self.error(
                    &prefix,
                    "a tier name may only hold letters, digits, `-` and `_`",
                );
                continue;
            }
            if value.is_null() {
                continue;
            }
            let Some(m) = self.table(&prefix, value, TIER_KEYS) else {
                continue;
            };
            let p = prefix.as_str();
            let tier = TierLayer {
                model: self.field(m, p, "model", Walker::nonempty),
                label: self.field(m, p, "label", Walker::nonempty),
                output_usd_per_million: self.field(m, p, "output_usd_per_million", Walker::price),
                extra_body: self.field(m, p, "extra_body", Walker::extra_body),
                budget_ms: self.field(m, p, "budget_ms", |w, k, v| w.uint(k, v, MS_BUDGET)),
                max_tokens: self.field(m, p, "max_tokens", |w, k, v| w.u32(k, v, TOKENS)),
                fallback: self.field(m, p, "fallback", Walker::nonempty),
            };
            tiers.insert(name.clone(), tier);
        }
        tiers
    }

    fn action(&mut self, map: &Map<String, Value>, name: &str) -> ActionLayer {
        let prefix = format!("actions.{name}");
        let Some(m) = self.section(map, &prefix, ACTION_KEYS) else {
            return ActionLayer::default();
        };
        ActionLayer {
            tier: self.field(m, &prefix, "tier", Walker::tier_name),
            escalate: self.field(m, &prefix, "escalate", |w, k, v| {
                let items = w.list(k, v)?;
                let names: Vec<_> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| w.tier_name(&format!("{k}[{i}]"), v))
                    .collect();
                (names.len() == items.len()).then_some(names)
            }),
        }
    }

    /// The sub-table `name` of `map` (absent or null: `None`), its keys checked against `known`.
    /// `name` may be dotted; only its last part is looked up in `map`.
    fn section<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        name: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let last = name.rsplit('.').next().unwrap_or(name);
        let value = map.get(last).filter(|v| !v.is_null())?;
        self.table(name, value, known)
    }

    fn table<'v>(
        &mut self,
        key: &str,
        value: &'v Value,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            let what = if key.is_empty() {
                "settings".to_owned()
            } else {
                format!("`{key}`")
            };
            let message = format!("expected a table of {what}, got {}", describe(value));
            self.error(key, message);
            return None;
        };
        for name in map.keys() {
            if !known.contains(&name.as_str()) {
                let message = match suggest(name, known) {
                    Some(s) => format!("unknown key; did you mean `{s}`?"),
                    None => format!("unknown key; expected one of: {}", known.join(", ")),
                };
                self.error(&join(key, name), message);
            }
        }
        Some(map)
    }

    /// Reads `map[name]` with `read` under the dotted key `prefix.name`; absent or null: `None`.
    fn field<T>(
        &mut self,
        map: &Map<String, Value>,
        prefix: &str,
        name: &str,
        read: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        let value = map.get(name).filter(|v| !v.is_null())?;
        read(self, &join(prefix, name), value)
    }

    fn uint(&mut self, key: &str, value: &Value, (min, max): (u64, u64)) -> Option<u64> {
        let n: Option<i128> = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
                        .map(|f| f as i128)
                }),
            _ => None,
        };
        let kind = if min == 0 {
            "a non-negative integer"
        } else {
            "a positive integer"
        };
        let Some(n) = n else {
            self.error(key, format!("expected {kind}, got {}", describe(value)));
            return None;
        };
        if n < i128::from(min) || n > i128::from(max) {
            self.error(key, format!("must be between {min} and {max}, got {n}"));
            return None;
        }
        u64::try_from(n).ok()
    }

    fn u32(&mut self, key: &str, value: &Value, range: (u64, u64)) -> Option<u32> {
        self.uint(key, value, range)
            .and_then(|n| u32::try_from(n).ok())
    }

    fn usize(&mut self, key: &str, value: &Value, range: (u64, u64)) -> Option<usize> {
        self.uint(key, value, range)
            .and_then(|n| usize::try_from(n).ok())
    }

    fn price(&mut self, key: &str, value: &Value) -> Option<f64> {
        match value.as_f64() {
            Some(p) if p.is_finite() && (0.0..=10_000.0).contains(&p) => Some(p),
            Some(p) => {
                self.error(
                    key,
                    format!("must be between 0 and 10000 (USD per million tokens), got {p}"),
                );
                None
            }
            None => {
                self.error(
                    key,
                    format!(
                        "expected a number (USD per million tokens), got {}",
                        describe(value)
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: &Value) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.error(
                key,
                format!("expected true or false, got {}", describe(value)),
            );
        }
        b
    }

    fn string(&mut self, key: &str, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(key, format!("expected a string, got {}", describe(value)));
                None
            }
        }
    }

    fn nonempty(&mut self, key: &str, value: &Value) -> Option<String> {
        let s = self.string(key, value)?;
        if s.trim().is_empty() {
            self.error(key, "must not be empty");
            return None;
        }
        Some(s.trim().to_owned())
    }

    fn tier_name(&mut self, key: &str, value: &Value) -> Option<String> {
        let s = self.nonempty(key, value)?;
        if !is_name(&s) {
            self.error(key, format!("not a tier name: {s:?}"));
            return None;
        }
        Some(s)
    }

    fn env_name(&mut self, key: &str, value: &Value) -> Option<String> {
        let s = self.nonempty(key, value)?;
        let valid = s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            self.error(key, format!("expected the name of an environment variable (letters, digits, `_`), got {s:?}"));
            return None;
        }
        Some(s)
    }

    fn log_level(&mut self, key: &str, value: &Value) -> Option<String> {
        let s = self.string(key, value)?.trim().to_ascii_lowercase();
        if !LOG_LEVELS.contains(&s.as_str()) {
            self.error(
                key,
                format!("expected one of {}, got {s:?}", LOG_LEVELS.join(", ")),
            );
            return None;
        }
        Some(s)
    }

    /// A path; an empty string means "not set" (editors often send `""` for an unset path).
    /// A leading `~/` is expanded to the home directory.
    fn path(&mut self, key: &str, value: &Value) -> Option<Option<PathBuf>> {
        let s = self.string(key, value)?;
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        if let Some(rest) = s.strip_prefix("~/") {
            if let Some(home) = super::loader::home_dir() {
                return Some(Some(home.join(rest)));
            }
        }
        Some(Some(PathBuf::from(s)))
    }

    fn list<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            _ => {
                self.error(key, format!("expected a list, got {}", describe(value)));
                None
            }
        }
    }

    fn globs(&mut self, key: &str, value: &Value) -> Option<Vec<String>> {
        let items = self.list(key, value)?;
        let mut globs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(g) = self.nonempty(&k, item) else {
                continue;
            };
            match globset::Glob::new(&g) {
                Ok(_) => globs.push(g),
                Err(e) => self.error(&k, format!("not a valid glob pattern: {e}")),
            }
        }
        (globs.len() == items.len()).then_some(globs)
    }

    fn extra_body(&mut self, key: &str, value: &Value) -> Option<Map<String, Value>> {
        let Value::Object(map) = value else {
            self.error(key, format!("expected a table, got {}", describe(value)));
            return None;
        };
        let mut ok = true;
        for reserved in RESERVED_BODY_KEYS {
            if map.contains_key(*reserved) {
                let hint = if *reserved == "model" {
                    "; set the tier's `model` instead"
                } else {
                    ""
                };
                self.error(
                    &join(key, reserved),
                    format!("codetier sets this request field itself{hint}"),
                );
                ok = false;
            }
        }
        ok.then(|| map.clone())
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// How a bad value is shown in an error: strings quoted, tables and lists by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn toml_error_message(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(
                "invalid TOML at line {line}, column {column}: {}",
                error.message().trim()
            )
        }
        None => format!("invalid TOML: {}", error.message().trim()),
    }
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        // NaN and infinities have no JSON form; as strings they still fail type checks clearly.
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}
