//! What every subcommand does first: load the configuration, check the key, and decide what
//! the user reads (and which exit code) when something fails.

use std::path::{Path, PathBuf};

use super::{exit, Global};
use crate::config::{Config, ConfigErrors, Loader, Sources};
use crate::engine::EngineError;
use crate::provider::ProviderError;
use crate::router::RouteError;

/// Deadline of one answer in the CLI. The interactive budget (2.5 s for flash) is meant for a
/// person waiting in an editor; a CI job reviewing a whole chunk of a file would hit it on
/// every request, so batch work gets at least this long per answer.
pub const BATCH_BUDGET_MS: u64 = 120_000;

/// A failure that ends the command: the message the user reads and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    pub fn provider(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::PROVIDER,
            message: message.into(),
        }
    }
}

/// The configuration of a command and where it came from.
pub struct Loaded {
    pub config: Config,
    /// The repository root (or the current directory): workspace file, SARIF paths.
    pub root: PathBuf,
}

/// Starts logging to stderr: warnings only, unless `CODETIER_LOG` / `RUST_LOG` say otherwise
/// (logging reads them itself). The CLI's stdout carries results, so logs never go there.
pub fn init_logging() -> Option<crate::logging::Guard> {
    crate::logging::init("warn", None).ok()
}

/// Loads user file (or `--config`), workspace file at the repository root, and the environment.
pub fn load(global: &Global) -> Result<Loaded, Failure> {
    let root = repo_root();
    let loaded = Loader::load(Sources {
        user_file: global.config.as_deref(),
        workspace_root: Some(&root),
        init_options: None,
    });
    if let Some(errors) = loaded.errors.into_iter().next() {
        return Err(config_failure(errors));
    }
    let config = loaded.config.map_err(config_failure)?;
    if !loaded.refused.is_empty() {
        // The rest of the workspace file applies; say what did not.
        super::report(&ConfigErrors(loaded.refused).to_string());
    }
    if let Some(tier) = &global.tier {
        check_tier(&config, tier)?;
    }
    Ok(Loaded { config, root })
}

/// The configuration as the CLI runs it: batch deadlines instead of interactive ones.
pub fn for_batch(mut config: Config) -> Config {
    let names: Vec<String> = config.tiers.keys().cloned().collect();
    for name in names {
        let budget = config.budget_ms(&name).max(BATCH_BUDGET_MS);
        if let Some(tier) = config.tiers.get_mut(&name) {
            tier.budget_ms = Some(budget);
        }
    }
    config
}

pub fn check_tier(config: &Config, tier: &str) -> Result<(), Failure> {
    config
        .tier(tier)
        .map(|_| ())
        .map_err(|e| Failure::usage(format!("codetier: {e}")))
}

fn config_failure(errors: ConfigErrors) -> Failure {
    Failure::usage(errors.to_string())
}

/// Whether the key variable is set; its value is never read here.
pub fn key_present(config: &Config) -> bool {
    std::env::var_os(&config.api_key_env).is_some_and(|v| !v.is_empty())
}

/// What to tell a user who has no key, naming the variable and the command to set it.
pub fn missing_key_message(env: &str) -> String {
    format!(
        "codetier: no API key: the environment variable {env} is not set.\n\
         Set it in this shell (or as a secret in CI) and run the command again:\n\
         \n    export {env}=...\n\n\
         The variable's name comes from `api_key_env` in the configuration (default GLOBAL_API_KEY)."
    )
}

/// Fails before any work when the provider will need a key that is not there.
pub fn require_key(config: &Config) -> Result<(), Failure> {
    if key_present(config) {
        Ok(())
    } else {
        Err(Failure::usage(missing_key_message(&config.api_key_env)))
    }
}

/// The one place that decides what the user reads of an engine error, and the exit code.
pub fn engine_failure(error: &EngineError, env: &str) -> Failure {
    match error {
        EngineError::Excluded { .. } | EngineError::EmptySelection => {
            Failure::usage(format!("codetier: {error}"))
        }
        EngineError::Route(route) => route_failure(route, env),
        EngineError::EmptyAnswer
        | EngineError::Cancelled
        | EngineError::Incomplete { .. }
        | EngineError::CutOff(_) => Failure::provider(format!("codetier: {error}")),
    }
}

fn route_failure(error: &RouteError, env: &str) -> Failure {
    match error {
        RouteError::UnknownTier(_) => Failure::usage(format!("codetier: {error}")),
        RouteError::Provider(ProviderError::MissingKey { .. }) => {
            Failure::usage(missing_key_message(env))
        }
        RouteError::Provider(
            ProviderError::InvalidKey { .. }
            | ProviderError::InsecureUrl { .. }
            | ProviderError::BadUrl { .. },
        ) => Failure::usage(format!("codetier: {error}")),
        _ => Failure::provider(format!("codetier: {error}")),
    }
}

/// The repository root above the current directory (a `.git` entry), else the current directory.
pub fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    find_root(&cwd).unwrap_or(cwd)
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_message_names_variable_and_command() {
        let m = missing_key_message("MY_KEY");
        assert!(m.contains("MY_KEY is not set"), "{m}");
        assert!(m.contains("export MY_KEY=..."), "{m}");
    }

    #[test]
    fn batch_budget_raises_short_deadlines_only() {
        let mut config = Config::default();
        if let Some(t) = config.tiers.get_mut("reasoning") {
            t.budget_ms = Some(300_000);
        }
        let batch = for_batch(config);
        assert_eq!(batch.budget_ms("flash"), BATCH_BUDGET_MS);
        assert_eq!(batch.budget_ms("reasoning"), 300_000);
    }

    #[test]
    fn unknown_tier_is_a_usage_error_listing_tiers() {
        let err = check_tier(&Config::default(), "fast").expect_err("unknown");
        assert_eq!(err.code, exit::USAGE);
        assert!(
            err.message.contains("coder, flash, pro, reasoning"),
            "{}",
            err.message
        );
    }

    #[test]
    fn root_is_found_above_a_subdirectory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        assert_eq!(
            find_root(&dir.path().join("a/b")).as_deref(),
            Some(dir.path())
        );
    }
}
