//! Configuration errors: which source, which dotted key, and what was wrong with it.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Defaults,
    UserFile(PathBuf),
    WorkspaceFile(PathBuf),
    InitializationOptions,
    DidChangeConfiguration,
    /// `CODETIER_BASE_URL`.
    Environment,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Defaults => f.write_str("built-in defaults"),
            Source::UserFile(path) | Source::WorkspaceFile(path) => {
                write!(f, "{}", path.display())
            }
            Source::InitializationOptions => f.write_str("initializationOptions"),
            Source::DidChangeConfiguration => f.write_str("workspace/didChangeConfiguration"),
            Source::Environment => f.write_str("environment (CODETIER_BASE_URL)"),
        }
    }
}

/// One problem with one key of one source. `key` is dotted (`tiers.flash.model`) and empty
/// when the problem concerns the whole source (an unreadable file, a TOML syntax error).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    pub source: Source,
}

impl ConfigError {
    pub fn new(source: &Source, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
            source: source.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "codetier config: {}: {}", self.source, self.message)
        } else {
            write!(
                f,
                "codetier config: {}: `{}`: {}",
                self.source, self.key, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one attempt to load or resolve configuration, in the order found.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }

    /// `Ok(value)` when no error was collected.
    pub fn check<T>(errors: Vec<ConfigError>, value: T) -> Result<T, ConfigErrors> {
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// True when some error names exactly `key`.
    pub fn names(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
