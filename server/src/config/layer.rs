//! One source's settings as a layer: its value checked key by key against the schema and normalised.
//!
//! Sources are parsed into a `serde_json::Value` first (TOML is converted) and walked along
//! `Config::KEYS`, so that every unknown key and bad value is reported with its full dotted name,
//! and all the problems of a source are collected at once instead of stopping at the first.
//! A workspace file's value for a key it may not set is refused alone: the key is dropped and
//! named, and the rest of the file applies.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::schema::{find, Key, Kind, Trust};
use super::{Config, ConfigError, ConfigErrors, Source, LOG_LEVELS};

/// Settings of one source, normalised (a JSON table holding only valid keys and values; absent
/// keys show the lower layers through), and the keys refused because of who set them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub(super) values: Map<String, Value>,
    /// Keys this source may not set, each named with why; they are not in `values`.
    pub refused: Vec<ConfigError>,
}

/// Request fields codetier sets itself; `extra_body` may not override them.
const RESERVED_BODY_KEYS: &[&str] = &["model", "messages", "stream"];

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
    /// Bad values and unknown keys refuse the whole source. For a [`Source::WorkspaceFile`], a key
    /// its [`Trust`] does not allow from a workspace is dropped and listed in `refused`.
    pub fn from_json(value: &Value, source: Source) -> Result<Layer, ConfigErrors> {
        let mut walker = Walker {
            source: &source,
            workspace: matches!(source, Source::WorkspaceFile(_)),
            errors: Vec::new(),
            refused: Vec::new(),
        };
        let values = if value.is_null() {
            Map::new()
        } else {
            walker.table("", value, Config::KEYS).unwrap_or_default()
        };
        let refused = std::mem::take(&mut walker.refused);
        ConfigErrors::check(walker.errors, Layer { values, refused })
    }

    /// True when this layer sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value this layer sets at the dotted `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let mut parts = key.split('.');
        let mut value = self.values.get(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        Some(value)
    }
}

/// Why a base URL is refused. `Display` is the message a user reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Plain http to a host that is not loopback: the key would travel unencrypted.
    #[error("plain http is refused unless the host is loopback (127.0.0.1, ::1, localhost), because the API key would travel unencrypted; use https: {0:?}")]
    Insecure(String),
    #[error("{0}")]
    Bad(String),
}

/// Checks a base URL: http or https, with a host, no credentials, query or fragment; plain http
/// only to a loopback host. Returns it without a trailing slash.
///
/// The one check of an endpoint: configuration calls it on every source, and the provider on
/// the URL it is given.
pub fn check_base_url(url: &str) -> Result<String, BaseUrlError> {
    let bad = |m: String| BaseUrlError::Bad(m);
    let url = url.trim();
    let parsed =
        reqwest::Url::parse(url).map_err(|e| bad(format!("not a valid URL ({e}): {url:?}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("the URL has no host: {url:?}")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Whatever prints the base URL (logs, doctor) would print these too.
        return Err(bad(
            "credentials in the URL are refused; the key comes from `api_key_env`".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        // Request paths are appended to the base URL; a query would end up in the middle.
        return Err(bad(format!(
            "a base URL may not carry a query or fragment (`?…`, `#…`): {url:?}"
        )));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => return Err(BaseUrlError::Insecure(url.to_owned())),
        other => {
            return Err(bad(format!(
                "expected an http or https URL, got scheme {other:?}"
            )))
        }
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Whether `url` names a loopback host (127.0.0.0/8, ::1, localhost).
pub fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| is_loopback(&u))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed (`[::1]`); the URL parser already normalised IPv4 forms.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Walks a settings value along the schema, collecting errors and refusals with dotted keys.
struct Walker<'s> {
    source: &'s Source,
    workspace: bool,
    errors: Vec<ConfigError>,
    refused: Vec<ConfigError>,
}

impl Walker<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.source, key, message));
    }

    /// `value` as a table, or an error at `key` (the top level is "settings").
    fn object<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        if let Value::Object(map) = value {
            return Some(map);
        }
        let what = if key.is_empty() {
            "settings".to_owned()
        } else {
            format!("`{key}`")
        };
        self.error(
            key,
            format!("expected a table of {what}, got {}", describe(value)),
        );
        None
    }

    /// A table of `keys` at `key`: every known key checked, unknown ones named with a suggestion.
    fn table(
        &mut self,
        key: &str,
        value: &Value,
        keys: &'static [Key],
    ) -> Option<Map<String, Value>> {
        let map = self.object(key, value)?;
        let mut out = Map::new();
        for (name, value) in map {
            let dotted = join(key, name);
            let Some(spec) = find(keys, name) else {
                let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
                let message = match suggest(name, &names) {
                    Some(s) => format!("unknown key; did you mean `{s}`?"),
                    None => format!("unknown key; expected one of: {}", names.join(", ")),
                };
                self.error(&dotted, message);
                continue;
            };
            if value.is_null() {
                continue;
            }
            if let Some(v) = self.value(&dotted, value, spec) {
                if self.allowed(&dotted, &v, spec) {
                    out.insert(name.clone(), v);
                }
            }
        }
        Some(out)
    }

    /// Whether this source may set `key` to `value`; a refusal is recorded, not an error.
    fn allowed(&mut self, key: &str, value: &Value, spec: &Key) -> bool {
        // A table is judged by its keys, so a refusal names the exact key.
        let container = matches!(spec.kind, Kind::Section(_) | Kind::Map { .. });
        let allowed = !self.workspace
            || container
            || match spec.trust {
                Trust::Any | Trust::WorkspaceMayAdd => true,
                Trust::User => false,
                Trust::WorkspaceMayEnable => *value == Value::Bool(true),
                Trust::WorkspaceMayDisable => *value == Value::Bool(false),
            };
        if !allowed {
            let message = format!(
                "refused: a workspace file {} (it comes with the code, so it may not decide where \
                 requests and the key go, what is sent or what is spent); set it in your user \
                 config file or your editor's user settings. The rest of the file applies.",
                spec.trust.workspace_limit()
            );
            self.refused
                .push(ConfigError::new(self.source, key, message));
        }
        allowed
    }

    /// Checks and normalises one value of kind `spec.kind`; `None` after recording an error.
    fn value(&mut self, key: &str, value: &Value, spec: &Key) -> Option<Value> {
        match spec.kind {
            Kind::Bool => self.boolean(key, value).map(Value::Bool),
            Kind::Uint { min, max } => self.uint(key, value, min, max).map(Value::from),
            Kind::Price => self.price(key, value).map(Value::from),
            Kind::Usd => self.usd(key, value).map(Value::from),
            Kind::Text => self.nonempty(key, value).map(Value::String),
            Kind::BaseUrl => {
                let s = self.string(key, value)?;
                check_base_url(&s)
                    .map_err(|m| self.error(key, m.to_string()))
                    .ok()
                    .map(Value::String)
            }
            Kind::EnvName => self.env_name(key, value).map(Value::String),
            Kind::LogLevel => self.log_level(key, value).map(Value::String),
            Kind::Choice(words) => self.choice(key, value, words).map(Value::String),
            Kind::Path => self.path(key, value),
            Kind::TierName => self.tier_name(key, value).map(Value::String),
            Kind::TierNames => self.tier_names(key, value),
            Kind::Globs => self.globs(key, value),
            Kind::Body => self.extra_body(key, value).map(Value::Object),
            Kind::Section(keys) => self.container(|w| w.table(key, value, keys)),
            Kind::Map { keys, .. } => self.container(|w| w.entries(key, value, keys)),
        }
    }

    /// A table read by `read`; one left empty because all its keys were refused sets nothing
    /// (a workspace's `[tiers.mine]` must not add a tier without a model).
    fn container(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<Map<String, Value>>,
    ) -> Option<Value> {
        let refused = self.refused.len();
        let map = read(self)?;
        if map.is_empty() && self.refused.len() > refused {
            return None;
        }
        Some(Value::Object(map))
    }

    /// A table of named entries, each a table of `keys`.
    fn entries(
        &mut self,
        key: &str,
        value: &Value,
        keys: &'static [Key],
    ) -> Option<Map<String, Value>> {
        let map = self.object(key, value)?;
        let mut out = Map::new();
        for (name, value) in map {
            let prefix = join(key, name);
            if !is_name(name) {
                self.error(&prefix, "a name may only hold letters, digits, `-` and `_`");
                continue;
            }
            if value.is_null() {
                continue;
            }
            if let Some(entry) = self.container(|w| w.table(&prefix, value, keys)) {
                out.insert(name.clone(), entry);
            }
        }
        Some(out)
    }

    fn uint(&mut self, key: &str, value: &Value, min: u64, max: u64) -> Option<u64> {
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

    fn usd(&mut self, key: &str, value: &Value) -> Option<f64> {
        match value.as_f64() {
            Some(p) if p.is_finite() && (0.0..=1_000_000.0).contains(&p) => Some(p),
            Some(p) => {
                self.error(key, format!("must be between 0 and 1000000 (USD), got {p}"));
                None
            }
            None => {
                self.error(
                    key,
                    format!("expected a number (USD), got {}", describe(value)),
                );
                None
            }
        }
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

    fn tier_names(&mut self, key: &str, value: &Value) -> Option<Value> {
        let items = self.list(key, value)?;
        let names: Vec<Value> = items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| self.tier_name(&format!("{key}[{i}]"), v))
            .map(Value::String)
            .collect();
        (names.len() == items.len()).then_some(Value::Array(names))
    }

    fn env_name(&mut self, key: &str, value: &Value) -> Option<String> {
        let s = self.nonempty(key, value)?;
        let valid = s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if !valid && s.contains("://") {
            // A URL here may carry a password: never echo it.
            self.error(key, "expected the name of an environment variable, got what looks like a URL (not shown): put the URL in an environment variable and name that variable here".to_owned());
            return None;
        }
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

    fn choice(&mut self, key: &str, value: &Value, words: &[&str]) -> Option<String> {
        let s = self.string(key, value)?.trim().to_ascii_lowercase();
        if !words.contains(&s.as_str()) {
            self.error(
                key,
                format!("expected one of {}, got {s:?}", words.join(", ")),
            );
            return None;
        }
        Some(s)
    }

    /// A path; an empty string means "not set" (editors often send `""` for an unset path), so
    /// it yields nothing and no error. A leading `~/` is expanded to the home directory.
    fn path(&mut self, key: &str, value: &Value) -> Option<Value> {
        let s = self.string(key, value)?;
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix("~/") {
            if let Some(home) = crate::paths::home_dir() {
                return Some(Value::String(
                    home.join(rest).to_string_lossy().into_owned(),
                ));
            }
        }
        Some(Value::String(s.to_owned()))
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

    fn globs(&mut self, key: &str, value: &Value) -> Option<Value> {
        let items = self.list(key, value)?;
        let mut globs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(g) = self.nonempty(&k, item) else {
                continue;
            };
            match globset::Glob::new(&g) {
                Ok(_) => globs.push(Value::String(g)),
                Err(e) => self.error(&k, format!("not a valid glob pattern: {e}")),
            }
        }
        (globs.len() == items.len()).then_some(Value::Array(globs))
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
