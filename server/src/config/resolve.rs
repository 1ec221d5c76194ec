//! Combining layers over the defaults along the schema (later wins, tables merge key by key,
//! lists replace, a workspace's additions append) and validating the result as a whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::layer::{check_base_url, Layer};
use super::schema::{find, Key, Kind, Trust};
use super::{known_model, Config, ConfigError, ConfigErrors, Source};

/// Applies `layers` (lowest first) over the defaults, then `env_base_url`, then validates.
/// Errors found here name the source that last set the offending key.
pub(crate) fn resolve(
    layers: &[(&Source, &Layer)],
    env_base_url: Option<&str>,
) -> Result<Config, ConfigErrors> {
    let mut merged = match serde_json::to_value(Config::default()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut origin = Origins::default();
    for (source, layer) in layers {
        let mut merge = Merge {
            source,
            workspace: matches!(source, Source::WorkspaceFile(_)),
            origin: &mut origin,
        };
        merge.table(&mut merged, &layer.values, Config::KEYS, "");
    }
    let mut errors = Vec::new();
    let mut config: Config = match serde_json::from_value(Value::Object(merged)) {
        Ok(config) => config,
        // Every value was checked against its kind, so this is a bug in the schema; say so
        // rather than panic, and keep the last good configuration.
        Err(e) => {
            let message = format!("internal error combining the configuration: {e}");
            return Err(ConfigErrors::one(ConfigError::new(
                &Source::Defaults,
                "",
                message,
            )));
        }
    };
    if let Some(url) = env_base_url.filter(|u| !u.trim().is_empty()) {
        match check_base_url(url) {
            Ok(url) => {
                config.base_url = url;
                origin.set("base_url", &Source::Environment);
            }
            Err(message) => errors.push(ConfigError::new(
                &Source::Environment,
                "base_url",
                message.to_string(),
            )),
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

/// Merges one layer into the configuration so far, recording where each key came from.
struct Merge<'a> {
    source: &'a Source,
    workspace: bool,
    origin: &'a mut Origins,
}

impl Merge<'_> {
    fn table(
        &mut self,
        dst: &mut Map<String, Value>,
        src: &Map<String, Value>,
        keys: &'static [Key],
        prefix: &str,
    ) {
        for (name, value) in src {
            let Some(key) = find(keys, name) else {
                continue;
            };
            let dotted = join(prefix, name);
            let slot = dst.entry(name.clone()).or_insert(Value::Null);
            self.key(slot, value, key, &dotted);
        }
    }

    fn key(&mut self, dst: &mut Value, value: &Value, key: &'static Key, dotted: &str) {
        match (key.kind, value) {
            (Kind::Section(keys), Value::Object(src)) => {
                let dst = object(dst);
                self.table(dst, src, keys, dotted);
            }
            (Kind::Map { keys, entry }, Value::Object(src)) => {
                let dst = object(dst);
                for (name, fields) in src {
                    let Value::Object(fields) = fields else {
                        continue;
                    };
                    let prefix = join(dotted, name);
                    let slot = dst.entry(name.clone()).or_insert_with(|| {
                        self.origin.set(&prefix, self.source);
                        entry()
                    });
                    let previous_model = slot.get("model").cloned();
                    self.table(object(slot), fields, keys, &prefix);
                    if dotted == "tiers" {
                        self.settle_tier(object(slot), fields, previous_model, &prefix);
                    }
                }
            }
            (Kind::Body, Value::Object(src)) => {
                let dst = object(dst);
                for (k, v) in src {
                    if v.is_null() {
                        dst.remove(k);
                    } else {
                        dst.insert(k.clone(), v.clone());
                    }
                    self.origin.set(&join(dotted, k), self.source);
                }
            }
            (Kind::Globs, Value::Array(items))
                if self.workspace && key.trust == Trust::WorkspaceMayAdd =>
            {
                // A workspace only adds to the list in force; it can never drop a default.
                if let Value::Array(list) = dst {
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                } else {
                    *dst = value.clone();
                }
                self.origin.set(dotted, self.source);
            }
            _ => {
                *dst = value.clone();
                self.origin.set(dotted, self.source);
            }
        }
    }

    /// The price belongs to the model: a layer that changes a tier's model brings the new
    /// model's known price or none at all, never the old model's. A label that was only the
    /// old model's name follows the model; a chosen label (the default "Flash") stays.
    fn settle_tier(
        &mut self,
        tier: &mut Map<String, Value>,
        layer: &Map<String, Value>,
        previous_model: Option<Value>,
        prefix: &str,
    ) {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
        let old = text(previous_model.as_ref());
        let new = text(tier.get("model"));
        if old == new {
            return;
        }
        let key = |field: &str| format!("{prefix}.{field}");
        if !layer.contains_key("label") {
            let label = text(tier.get("label"));
            if label.is_empty() || label == label_for(&old) {
                tier.insert("label".into(), Value::String(label_for(&new)));
                self.origin.set(&key("label"), self.source);
            }
        }
        if !layer.contains_key("output_usd_per_million") {
            let price =
                known_model(&new).map_or(Value::Null, |k| Value::from(k.output_usd_per_million));
            tier.insert("output_usd_per_million".into(), price);
            self.origin.set(&key("output_usd_per_million"), self.source);
        }
    }
}

/// `value` as a table, replacing anything else (a null slot) with an empty one.
fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made a table"),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks that need the combined configuration: references between sections, cross-field bounds.
fn validate(c: &Config, origin: &Origins, errors: &mut Vec<ConfigError>) {
    let mut error = |key: &str, origin_key: &str, message: String| {
        errors.push(ConfigError::new(&origin.of(origin_key), key, message));
    };
    if let Err(message) = check_base_url(&c.base_url) {
        error("base_url", "base_url", message.to_string());
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
    if !c.tiers.contains_key(&c.completion.tier) {
        let message = format!(
            "unknown tier `{}`; known tiers: {}",
            c.completion.tier,
            known()
        );
        error("completion.tier", "completion.tier", message);
    }
    if c.completion.debounce_ms >= c.completion.budget_ms {
        let message = format!(
            "must be less than completion.budget_ms ({}), or every completion is dropped; got {}",
            c.completion.budget_ms, c.completion.debounce_ms
        );
        error("completion.debounce_ms", "completion.debounce_ms", message);
    }
    if c.hedge.min_delay_ms > c.hedge.max_delay_ms {
        let message = format!(
            "must not exceed hedge.max_delay_ms ({}), got {}",
            c.hedge.max_delay_ms, c.hedge.min_delay_ms
        );
        error("hedge.min_delay_ms", "hedge.min_delay_ms", message);
    }
}
