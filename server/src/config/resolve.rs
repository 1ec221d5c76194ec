//! Combining layers over the defaults (later wins, maps merge key by key, lists replace) and
//! validating the result as a whole.

use std::collections::BTreeMap;

use super::layer::{check_base_url, Layer};
use super::{known_model, Config, ConfigError, ConfigErrors, Source, TierConfig};

/// Applies `layers` (lowest first) over the defaults, then `env_base_url`, then validates.
/// Errors found here name the source that last set the offending key.
pub(crate) fn resolve(
    layers: &[(&Source, &Layer)],
    env_base_url: Option<&str>,
) -> Result<Config, ConfigErrors> {
    let mut config = Config::default();
    let mut origin = Origins::default();
    for (source, layer) in layers {
        apply(&mut config, layer, source, &mut origin);
    }
    let mut errors = Vec::new();
    if let Some(url) = env_base_url.filter(|u| !u.trim().is_empty()) {
        match check_base_url(url) {
            Ok(url) => {
                config.base_url = url;
                origin.set("base_url", &Source::Environment);
            }
            Err(message) => {
                errors.push(ConfigError::new(&Source::Environment, "base_url", message))
            }
        }
    }
    validate(&config, &origin, &mut errors);
    ConfigErrors::check(errors, config)
}

/// The label a tier gets from its model: the known model's label, else the model name.
pub fn label_for(model: &str) -> String {
    known_model(model).map_or_else(|| model.to_owned(), |k| k.label.to_owned())
}

/// Which source last set each dotted key; keys never set come from the defaults.
#[derive(Default)]
struct Origins(BTreeMap<String, Source>);

impl Origins {
    fn set(&mut self, key: &str, source: &Source) {
        self.0.insert(key.to_owned(), source.clone());
    }

    fn of(&self, key: &str) -> Source {
        self.0.get(key).cloned().unwrap_or(Source::Defaults)
    }
}

fn apply(c: &mut Config, l: &Layer, source: &Source, origin: &mut Origins) {
    // `set!(dst, src, "key")` copies a set value and records where it came from;
    // `set!(opt dst, ...)` does the same for a field that is itself optional.
    macro_rules! set {
        ($dst:expr, $src:expr, $key:expr) => {
            if let Some(v) = &$src {
                $dst = v.clone();
                origin.set(&$key, source);
            }
        };
        (opt $dst:expr, $src:expr, $key:expr) => {
            if let Some(v) = &$src {
                $dst = Some(v.clone());
                origin.set(&$key, source);
            }
        };
    }
    set!(c.base_url, l.base_url, "base_url");
    set!(c.api_key_env, l.api_key_env, "api_key_env");
    set!(
        c.latency_budget_ms,
        l.latency_budget_ms,
        "latency_budget_ms"
    );
    set!(c.command_reply_ms, l.command_reply_ms, "command_reply_ms");
    set!(c.max_tokens, l.max_tokens, "max_tokens");
    set!(c.hedge.enabled, l.hedge.enabled, "hedge.enabled");
    set!(
        c.hedge.min_delay_ms,
        l.hedge.min_delay_ms,
        "hedge.min_delay_ms"
    );
    set!(
        c.hedge.max_delay_ms,
        l.hedge.max_delay_ms,
        "hedge.max_delay_ms"
    );
    set!(
        c.retry.max_attempts,
        l.retry.max_attempts,
        "retry.max_attempts"
    );
    set!(
        c.retry.base_delay_ms,
        l.retry.base_delay_ms,
        "retry.base_delay_ms"
    );
    set!(
        c.breaker.failure_threshold,
        l.breaker.failure_threshold,
        "breaker.failure_threshold"
    );
    set!(c.breaker.open_ms, l.breaker.open_ms, "breaker.open_ms");

    for (name, t) in &l.tiers {
        let key = |field: &str| format!("tiers.{name}.{field}");
        let tier = c.tiers.entry(name.clone()).or_insert_with(|| {
            origin.set(&format!("tiers.{name}"), source);
            TierConfig {
                model: String::new(),
                label: String::new(),
                output_usd_per_million: None,
                extra_body: serde_json::Map::new(),
                budget_ms: None,
                max_tokens: None,
                fallback: None,
            }
        });
        if let Some(model) = t.model.as_ref().filter(|m| **m != tier.model) {
            // The price belongs to the model: a new model brings its known price or none at
            // all, never the old model's. A label that was only the old model's name follows
            // the model; a chosen label (the default "Flash") stays.
            if tier.label.is_empty() || tier.label == label_for(&tier.model) {
                tier.label = label_for(model);
                origin.set(&key("label"), source);
            }
            tier.output_usd_per_million = known_model(model).map(|k| k.output_usd_per_million);
            origin.set(&key("output_usd_per_million"), source);
            tier.model = model.clone();
            origin.set(&key("model"), source);
        }
        set!(tier.label, t.label, key("label"));
        set!(opt tier.output_usd_per_million, t.output_usd_per_million, key("output_usd_per_million"));
        set!(opt tier.budget_ms, t.budget_ms, key("budget_ms"));
        set!(opt tier.max_tokens, t.max_tokens, key("max_tokens"));
        set!(opt tier.fallback, t.fallback, key("fallback"));
        for (k, v) in t.extra_body.iter().flatten() {
            if v.is_null() {
                tier.extra_body.remove(k);
            } else {
                tier.extra_body.insert(k.clone(), v.clone());
            }
            origin.set(&key(&format!("extra_body.{k}")), source);
        }
    }

    for (name, dst, src) in [
        ("explain", &mut c.actions.explain, &l.actions.explain),
        ("generate", &mut c.actions.generate, &l.actions.generate),
        ("review", &mut c.actions.review, &l.actions.review),
    ] {
        set!(dst.tier, src.tier, format!("actions.{name}.tier"));
        set!(
            dst.escalate,
            src.escalate,
            format!("actions.{name}.escalate")
        );
    }

    set!(c.cache.enabled, l.cache.enabled, "cache.enabled");
    set!(
        c.cache.memory_entries,
        l.cache.memory_entries,
        "cache.memory_entries"
    );
    set!(
        c.cache.memory_bytes,
        l.cache.memory_bytes,
        "cache.memory_bytes"
    );
    set!(opt c.cache.dir, l.cache.dir, "cache.dir");
    set!(c.cache.ttl_days, l.cache.ttl_days, "cache.ttl_days");
    set!(
        c.cache.max_disk_bytes,
        l.cache.max_disk_bytes,
        "cache.max_disk_bytes"
    );
    set!(c.privacy.exclude, l.privacy.exclude, "privacy.exclude");
    set!(
        c.privacy.redact_secrets,
        l.privacy.redact_secrets,
        "privacy.redact_secrets"
    );
    set!(
        c.context.token_budget,
        l.context.token_budget,
        "context.token_budget"
    );
    set!(
        c.context.surrounding_lines,
        l.context.surrounding_lines,
        "context.surrounding_lines"
    );
    set!(c.log.level, l.log.level, "log.level");
    set!(opt c.log.file, l.log.file, "log.file");
}

/// Checks that need the combined configuration: references between sections, cross-field bounds.
fn validate(c: &Config, origin: &Origins, errors: &mut Vec<ConfigError>) {
    let mut error = |key: &str, origin_key: &str, message: String| {
        errors.push(ConfigError::new(&origin.of(origin_key), key, message));
    };
    if let Err(message) = check_base_url(&c.base_url) {
        error("base_url", "base_url", message);
    }
    for (name, tier) in &c.tiers {
        if tier.model.is_empty() {
            let key = format!("tiers.{name}.model");
            error(
                &key,
                &format!("tiers.{name}"),
                "a new tier needs a `model`".into(),
            );
        }
    }
    let known = || {
        c.tiers
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, action) in [
        ("explain", &c.actions.explain),
        ("generate", &c.actions.generate),
        ("review", &c.actions.review),
    ] {
        let key = format!("actions.{name}.tier");
        if !c.tiers.contains_key(&action.tier) {
            error(
                &key,
                &key,
                format!("unknown tier `{}`; known tiers: {}", action.tier, known()),
            );
        }
        let list_key = format!("actions.{name}.escalate");
        for (i, tier) in action.escalate.iter().enumerate() {
            if !c.tiers.contains_key(tier) {
                let message = format!("unknown tier `{tier}`; known tiers: {}", known());
                error(&format!("{list_key}[{i}]"), &list_key, message);
            }
        }
    }
    if c.hedge.min_delay_ms > c.hedge.max_delay_ms {
        let message = format!(
            "must not exceed hedge.max_delay_ms ({}), got {}",
            c.hedge.max_delay_ms, c.hedge.min_delay_ms
        );
        error("hedge.min_delay_ms", "hedge.min_delay_ms", message);
    }
}
