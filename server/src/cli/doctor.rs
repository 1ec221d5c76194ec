//! `codetier doctor`: a verdict and the problems with their fixes first, then where the
//! configuration came from, whether `base_url` answers, and one tiny request per tier with its
//! latency; `--verbose` adds the effective values (the key only as present or absent).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::setup::{self, Failure};
use super::{emit, exit, Global};
use crate::config::{Config, Loader, Sources};
use crate::provider::{ChatRequest, Endpoint, Message, Provider, ProviderError, Role};
use crate::team::Team;

/// How long one check may take before it counts as a timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// One problem found, with the checks that found the same thing (reported once).
struct Problem {
    what: String,
    diagnosis: String,
    also: Vec<String>,
}

/// The report: a verdict, the problems and warnings (each once), then the details.
#[derive(Default)]
struct Doctor {
    problems: Vec<Problem>,
    warnings: Vec<(String, String)>,
    details: String,
    code: u8,
}

impl Doctor {
    fn line(&mut self, s: impl AsRef<str>) {
        self.details.push_str(s.as_ref());
        self.details.push('\n');
    }

    fn ok(&mut self, what: &str, detail: &str) {
        self.line(format!("  ok    {what}: {detail}"));
    }

    /// A problem that leaves the exit code alone.
    fn warn(&mut self, what: &str, diagnosis: &str) {
        self.line(format!("  warn  {what}: {}", first_line(diagnosis)));
        self.warnings.push((what.to_owned(), diagnosis.to_owned()));
    }

    /// A failed check. The same diagnosis from another check (every tier behind a refused
    /// connection) is named under the first, not repeated.
    fn fail(&mut self, what: &str, diagnosis: &str, code: u8) {
        self.line(format!("  FAIL  {what}: {}", first_line(diagnosis)));
        match self.problems.iter_mut().find(|p| p.diagnosis == diagnosis) {
            Some(p) => p.also.push(what.to_owned()),
            None => self.problems.push(Problem {
                what: what.to_owned(),
                diagnosis: diagnosis.to_owned(),
                also: Vec::new(),
            }),
        }
        // A configuration error (2) outranks a broken provider (3): it must be fixed first.
        self.code = match (self.code, code) {
            (exit::USAGE, _) | (_, exit::USAGE) => exit::USAGE,
            (exit::PROVIDER, _) | (_, exit::PROVIDER) => exit::PROVIDER,
            _ => code,
        };
    }

    /// Says when a slow check is under way, on a terminal only (stdout carries the report).
    fn progress(&self, what: &str) {
        use std::io::IsTerminal as _;
        if std::io::stderr().is_terminal() {
            super::report(&format!("codetier doctor: checking {what}..."));
        }
    }

    /// The whole report: verdict first, then problems with their fixes, then the details.
    fn render(&self) -> String {
        let mut out = String::new();
        let verdict = match (self.code, self.problems.len()) {
            (exit::OK, _) if self.warnings.is_empty() => {
                "codetier doctor: all checks passed".to_owned()
            }
            (exit::OK, _) => format!(
                "codetier doctor: all checks passed, {} warning(s)",
                self.warnings.len()
            ),
            (code, n) => format!(
                "codetier doctor: {n} problem(s) found (exit code {code}: {})",
                if code == exit::USAGE {
                    "configuration"
                } else {
                    "provider"
                }
            ),
        };
        let _ = writeln!(out, "{verdict}");
        for (heading, items) in [
            (
                "Problems",
                self.problems
                    .iter()
                    .map(|p| {
                        let mut what = p.what.clone();
                        if !p.also.is_empty() {
                            let _ = write!(what, " (also {})", p.also.join(", "));
                        }
                        (what, p.diagnosis.clone())
                    })
                    .collect::<Vec<_>>(),
            ),
            ("Warnings", self.warnings.clone()),
        ] {
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{heading}:");
            for (what, diagnosis) in items {
                let mut lines = diagnosis.lines();
                let _ = writeln!(out, "  - {what}: {}", lines.next().unwrap_or(""));
                for more in lines {
                    let _ = writeln!(out, "    {more}");
                }
            }
        }
        let _ = write!(out, "\nDetails:\n{}", self.details);
        out
    }

    fn finish(self) -> Result<u8, Failure> {
        emit(&self.render());
        Ok(self.code)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

pub async fn run(global: &Global, verbose: bool) -> Result<u8, Failure> {
    let mut d = Doctor::default();
    let Some(config) = configuration(&mut d, global, verbose) else {
        return d.finish();
    };
    if let Some(provider) = provider(&mut d, &config).await {
        let models = models(&mut d, &provider, &config).await;
        tiers(&mut d, global, &config, &provider, models.as_deref()).await;
    }
    team(&mut d, &config).await;
    if !verbose {
        d.line("");
        d.line("(`codetier doctor --verbose` also prints the effective configuration)");
    }
    d.finish()
}

/// The team tier: whether its URL is there (never the URL) and whether Redis answers. An
/// unreachable Redis is a warning: codetier works without it.
async fn team(d: &mut Doctor, config: &Config) {
    d.line("");
    d.line("Team tier (Redis):");
    let team = match Team::from_config(&config.team) {
        Ok(Some(team)) => team,
        Ok(None) => {
            d.ok("team tier", "off (`team.redis_url_env` is not set)");
            return;
        }
        Err(e) => {
            d.warn("team tier", &format!("{e}; codetier works without it"));
            return;
        }
    };
    d.ok(
        "URL",
        &format!("present in ${} (never printed)", team.url_var()),
    );
    match team.ping().await {
        Ok(took) => d.ok(
            "reachable",
            &format!("PING answered in {} ms", took.as_millis()),
        ),
        Err(e) => d.warn(
            "reachable",
            &format!("{e}; codetier works on this machine's cache and ledger without it"),
        ),
    }
}

/// The sources and the configuration in force; `None` when nothing more can be checked.
fn configuration(d: &mut Doctor, global: &Global, verbose: bool) -> Option<Config> {
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
    for e in &loaded.errors {
        d.fail("configuration", &e.to_string(), exit::USAGE);
    }
    for refused in &loaded.refused {
        d.warn("configuration", &refused.to_string());
    }
    let config = match loaded.config {
        Err(e) => {
            d.fail("configuration", &e.to_string(), exit::USAGE);
            return None;
        }
        // A refused source means the configuration in force is not the one the user wrote:
        // probing it would test something else, so stop here.
        Ok(_) if !loaded.errors.is_empty() => {
            d.line("Provider and tiers: not checked (fix the configuration first)");
            return None;
        }
        Ok(config) => config,
    };
    if let Some(tier) = &global.tier {
        if let Err(f) = setup::check_tier(&config, tier) {
            d.fail("--tier", &f.message, exit::USAGE);
            return None;
        }
    }
    if verbose {
        d.line("");
        d.line("Effective configuration:");
        d.line(effective_toml(&config));
    }
    Some(config)
}

/// The key and the endpoint; the provider to ask when both are usable.
async fn provider(d: &mut Doctor, config: &Config) -> Option<Provider> {
    d.line("");
    d.line("Provider:");
    let key = setup::key_present(config);
    if key {
        d.ok("API key", &format!("present in ${}", config.api_key_env));
    } else {
        d.fail(
            "API key",
            &setup::missing_key_message(&config.api_key_env),
            exit::USAGE,
        );
    }
    d.progress(&config.base_url);
    let reachable = reachability(d, config).await;
    if !key || !reachable {
        d.line("Tiers: not checked (fix the problems above first)");
        return None;
    }
    match Provider::new(Endpoint {
        base_url: config.base_url.clone(),
        api_key_env: config.api_key_env.clone(),
    }) {
        Ok(p) => Some(p),
        Err(e) => {
            d.fail("endpoint", &diagnose(&e, config, None), exit::USAGE);
            None
        }
    }
}

/// The provider's model list, when it has one.
async fn models(d: &mut Doctor, provider: &Provider, config: &Config) -> Option<Vec<String>> {
    match tokio::time::timeout(CHECK_TIMEOUT, provider.list_models()).await {
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
        // Many servers (llama.cpp, some proxies) have no model list; the tiers' own requests
        // below say whether the models exist.
        Ok(Err(
            ProviderError::UnknownPath { .. }
            | ProviderError::UnknownModel { .. }
            | ProviderError::BadRequest { status: 404, .. },
        )) => {
            d.warn(
                "models",
                &format!(
                    "{}/models is not there (HTTP 404), so the model names are not checked against a list; each tier is asked directly below",
                    config.base_url
                ),
            );
            None
        }
        Ok(Err(e)) => {
            d.fail("models", &diagnose(&e, config, None), code_of(&e));
            None
        }
        Err(_) => {
            d.fail("models", &timeout_message(config), exit::PROVIDER);
            None
        }
    }
}

/// One tiny request per tier (or only `--tier`'s), after checking the model list.
async fn tiers(
    d: &mut Doctor,
    global: &Global,
    config: &Config,
    provider: &Provider,
    models: Option<&[String]>,
) {
    d.line("");
    d.line("Tiers (one request of at most 8 tokens each):");
    for (name, tier) in &config.tiers {
        if global.tier.as_ref().is_some_and(|t| t != name) {
            continue;
        }
        let what = format!("{name} ({})", tier.model);
        if let Some(models) = models.filter(|m| !m.is_empty()) {
            if !models.iter().any(|m| m == &tier.model) {
                let mut listed: Vec<&str> = models.iter().map(String::as_str).take(12).collect();
                if models.len() > listed.len() {
                    listed.push("…");
                }
                d.fail(
                    &what,
                    &format!(
                        "the provider does not list the model `{}`.\nSet tiers.{name}.model in your user config to one it serves: {}",
                        tier.model,
                        listed.join(", ")
                    ),
                    exit::USAGE,
                );
                continue;
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
            fim: None,
        };
        d.progress(&what);
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
            Ok(Err(e)) => d.fail(&what, &diagnose(&e, config, Some(name)), code_of(&e)),
            Err(_) => d.fail(&what, &timeout_message(config), exit::PROVIDER),
        }
    }
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
