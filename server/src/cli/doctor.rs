//! `codetier doctor`: where the configuration came from, the effective values (the key only as
//! present or absent), whether `base_url` answers, and one tiny request per tier with its
//! latency, each failure with a diagnosis a user can act on.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::setup::{self, Failure};
use super::{emit, exit, Global};
use crate::config::{Config, Loader, Sources};
use crate::provider::{ChatRequest, Endpoint, Message, Provider, ProviderError, Role};

/// How long one check may take before it counts as a timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of the report and the worst exit code seen so far.
struct Doctor {
    out: String,
    code: u8,
}

impl Doctor {
    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn ok(&mut self, what: &str, detail: &str) {
        self.line(format!("  ok    {what}: {detail}"));
    }

    /// A problem that leaves the exit code alone.
    fn warn(&mut self, what: &str, diagnosis: &str) {
        let mut lines = diagnosis.lines();
        self.line(format!("  warn  {what}: {}", lines.next().unwrap_or("")));
        for more in lines {
            self.line(format!("        {more}"));
        }
    }

    fn fail(&mut self, what: &str, diagnosis: &str, code: u8) {
        let mut lines = diagnosis.lines();
        self.line(format!("  FAIL  {what}: {}", lines.next().unwrap_or("")));
        for more in lines {
            self.line(format!("        {more}"));
        }
        // A configuration error (2) outranks a broken provider (3): it must be fixed first.
        self.code = match (self.code, code) {
            (exit::USAGE, _) | (_, exit::USAGE) => exit::USAGE,
            (exit::PROVIDER, _) | (_, exit::PROVIDER) => exit::PROVIDER,
            _ => code,
        };
    }

    /// Prints what is there so far; the report is useful even when a check failed.
    fn flush(&mut self) {
        emit(&std::mem::take(&mut self.out));
    }
}

pub async fn run(global: &Global) -> Result<u8, Failure> {
    let mut d = Doctor {
        out: String::new(),
        code: exit::OK,
    };
    d.line("codetier doctor");
    d.line("");
    d.line("Configuration sources (later wins):");
    let root = setup::repo_root();
    let loaded = Loader::load(Sources {
        user_file: global.config.as_deref(),
        workspace_root: Some(&root),
        init_options: None,
    });
    for source in loaded.loader.sources() {
        d.line(format!("  {source}"));
    }
    let mut errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    let config = match loaded.config {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    for e in &errors {
        d.fail("configuration", e, exit::USAGE);
    }
    for refused in &loaded.refused {
        d.warn("configuration", &refused.to_string());
    }
    let Some(config) = config else {
        d.flush();
        return Ok(d.code);
    };
    if let Some(tier) = &global.tier {
        if let Err(f) = setup::check_tier(&config, tier) {
            d.fail("--tier", &f.message, exit::USAGE);
            d.flush();
            return Ok(d.code);
        }
    }
    d.line("");
    d.line("Effective configuration:");
    d.line(effective_toml(&config));
    d.flush();

    d.line("Provider:");
    let key = setup::key_present(&config);
    if key {
        d.ok("API key", &format!("present in ${}", config.api_key_env));
    } else {
        d.fail(
            "API key",
            &setup::missing_key_message(&config.api_key_env),
            exit::USAGE,
        );
    }
    let reachable = reachability(&mut d, &config).await;
    d.flush();
    if !key || !reachable {
        d.line("Tiers: not checked (fix the problems above first)");
        d.flush();
        return Ok(d.code);
    }
    let provider = match Provider::new(Endpoint {
        base_url: config.base_url.clone(),
        api_key_env: config.api_key_env.clone(),
    }) {
        Ok(p) => p,
        Err(e) => {
            d.fail("endpoint", &diagnose(&e, &config, None), exit::USAGE);
            d.flush();
            return Ok(d.code);
        }
    };
    let models = match tokio::time::timeout(CHECK_TIMEOUT, provider.list_models()).await {
        Ok(Ok(models)) => {
            d.ok(
                "models",
                &format!(
                    "{} listed at {}/models; the key is accepted",
                    models.len(),
                    config.base_url
                ),
            );
            Some(models)
        }
        Ok(Err(e)) => {
            d.fail("models", &diagnose(&e, &config, None), code_of(&e));
            None
        }
        Err(_) => {
            d.fail("models", &timeout_message(&config), exit::PROVIDER);
            None
        }
    };
    d.line("");
    d.line("Tiers (one request of at most 8 tokens each):");
    d.flush();
    for (name, tier) in &config.tiers {
        if global.tier.as_ref().is_some_and(|t| t != name) {
            continue;
        }
        let what = format!("{name} ({})", tier.model);
        if let Some(models) = &models {
            if !models.is_empty() && !models.iter().any(|m| m == &tier.model) {
                d.line(format!(
                    "  note  {what}: not in the provider's model list; asking anyway"
                ));
            }
        }
        let request = ChatRequest {
            model: tier.model.clone(),
            messages: vec![Message {
                role: Role::User,
                content: "Reply with the single word OK.".into(),
            }],
            max_tokens: 8,
            extra_body: tier.extra_body.clone(),
            stream: true,
        };
        let started = Instant::now();
        match tokio::time::timeout(CHECK_TIMEOUT, provider.chat(&request, None)).await {
            Ok(Ok(done)) => {
                let ttft = done
                    .ttft
                    .map(|t| format!("{} ms", t.as_millis()))
                    .unwrap_or_else(|| "n/a".into());
                d.ok(
                    &what,
                    &format!(
                        "first token {ttft}, total {} ms",
                        started.elapsed().as_millis()
                    ),
                );
            }
            Ok(Err(e)) => d.fail(&what, &diagnose(&e, &config, Some(name)), code_of(&e)),
            Err(_) => d.fail(&what, &timeout_message(&config), exit::PROVIDER),
        }
        d.flush();
    }
    d.line("");
    d.line(match d.code {
        exit::OK => "All checks passed.",
        exit::USAGE => "Configuration problems found (exit code 2).",
        _ => "The provider is not usable (exit code 3).",
    });
    d.flush();
    Ok(d.code)
}

/// The configuration as TOML, with the key only as present/absent next to `api_key_env`.
fn effective_toml(config: &Config) -> String {
    let text = match toml::to_string(config) {
        Ok(t) => t,
        Err(_) => serde_json::to_string_pretty(config).unwrap_or_default(),
    };
    let state = if setup::key_present(config) {
        "present"
    } else {
        "absent"
    };
    let note = format!(
        "  # key: {state} (read from ${} at request time; never printed)",
        config.api_key_env
    );
    let mut out = String::new();
    for line in text.lines() {
        let _ = write!(out, "  {line}");
        if line.starts_with("api_key_env") {
            out.push_str(&note);
        }
        out.push('\n');
    }
    out
}

/// A plain GET of `{base_url}/models` without the key: any HTTP answer means the host is
/// reachable (DNS, TCP and TLS work), whatever the status.
async fn reachability(d: &mut Doctor, config: &Config) -> bool {
    let url = format!("{}/models", config.base_url.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(CHECK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            d.fail(
                "reachability",
                &format!("cannot build an HTTP client: {e}"),
                exit::PROVIDER,
            );
            return false;
        }
    };
    let started = Instant::now();
    match client.get(&url).send().await {
        Ok(resp) => {
            d.ok(
                "reachability",
                &format!(
                    "{} answered HTTP {} in {} ms",
                    config.base_url,
                    resp.status().as_u16(),
                    started.elapsed().as_millis()
                ),
            );
            true
        }
        Err(e) => {
            // The URL is in the report already, and its text must not sway the diagnosis.
            let e = e.without_url();
            let chain = error_chain(&e);
            let diagnosis = if e.is_timeout() {
                timeout_message(config)
            } else {
                classify_connect(&chain, config)
            };
            d.fail("reachability", &diagnosis, exit::PROVIDER);
            false
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

fn timeout_message(config: &Config) -> String {
    format!(
        "timeout: {} did not answer within {} s.\nCheck the network, a proxy or firewall, and that base_url is right.",
        host_of(&config.base_url),
        CHECK_TIMEOUT.as_secs()
    )
}

/// Names the failure behind a connection error message: DNS, TLS, refused, or other.
fn classify_connect(chain: &str, config: &Config) -> String {
    let lower = chain.to_ascii_lowercase();
    let host = host_of(&config.base_url);
    if lower.contains("dns")
        || lower.contains("lookup")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        format!("DNS: cannot resolve `{host}`.\nCheck base_url (or CODETIER_BASE_URL) and this machine's DNS. ({chain})")
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("ssl")
    {
        format!("TLS: the secure connection to `{host}` failed (untrusted or invalid certificate?).\nA local server without TLS needs an http://127.0.0.1 URL. ({chain})")
    } else if lower.contains("refused") {
        format!("connection refused: nothing listens at `{host}`.\nIs the server running, and is the port in base_url right? ({chain})")
    } else if lower.contains("timed out") || lower.contains("timeout") {
        timeout_message(config)
    } else {
        format!("cannot connect to `{host}`: {chain}")
    }
}

/// Problems of the local set-up (exit 2) versus problems of the provider (exit 3).
fn code_of(e: &ProviderError) -> u8 {
    match e {
        ProviderError::MissingKey { .. }
        | ProviderError::InvalidKey { .. }
        | ProviderError::InsecureUrl { .. }
        | ProviderError::BadUrl { .. } => exit::USAGE,
        _ => exit::PROVIDER,
    }
}

/// What a user reads for a provider error, with what to do about it.
fn diagnose(e: &ProviderError, config: &Config, tier: Option<&str>) -> String {
    let env = &config.api_key_env;
    match e {
        ProviderError::MissingKey { .. } => setup::missing_key_message(env),
        ProviderError::KeyRejected { .. } => format!(
            "key rejected: the provider refused the key in ${env} ({e}).\nCheck that it is current and issued for {}.",
            config.base_url
        ),
        ProviderError::PaymentRequired => format!("payment required: the account behind ${env} has no credit left ({e})."),
        ProviderError::UnknownModel { .. } => {
            let key = tier.map(|t| format!("tiers.{t}.model")).unwrap_or_else(|| "the tier's model".into());
            format!("unknown model: the provider does not serve it ({e}).\nSet {key} to a model from `{}/models`.", config.base_url)
        }
        ProviderError::RateLimited { .. } => format!("rate limited ({e}): wait a moment, or lower `codetier review --rate`."),
        ProviderError::Timeout { .. } => timeout_message(config),
        ProviderError::Connect { .. } => classify_connect(&e.to_string(), config),
        ProviderError::InvalidKey { .. } => format!("{e}\nSet it again: export {env}=..."),
        ProviderError::InsecureUrl { .. } | ProviderError::BadUrl { .. } => format!("{e}\nUse https, or http only to 127.0.0.1 / localhost / [::1]."),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_named() {
        let config = Config {
            base_url: "https://api.example.test/v1".into(),
            ..Config::default()
        };
        let dns = classify_connect(
            "error sending request: dns error: failed to lookup address information",
            &config,
        );
        assert!(
            dns.starts_with("DNS: cannot resolve `api.example.test`"),
            "{dns}"
        );
        let tls = classify_connect(
            "error sending request: invalid peer certificate: UnknownIssuer",
            &config,
        );
        assert!(tls.starts_with("TLS:"), "{tls}");
        let refused = classify_connect(
            "tcp connect error: Connection refused (os error 111)",
            &config,
        );
        assert!(refused.starts_with("connection refused"), "{refused}");
    }

    #[test]
    fn effective_config_hides_the_key_and_is_toml() {
        let text = effective_toml(&Config::default());
        assert!(
            text.contains("base_url = \"https://global-apis.com/v1\""),
            "{text}"
        );
        assert!(text.contains("# key: "), "{text}");
        assert!(text.contains("[tiers.flash]"), "{text}");
    }
}
