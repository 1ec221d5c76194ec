//! The loader: finds the configuration files, keeps the current layer of every source so a
//! later one can be replaced, and refuses any layer that would break the combined configuration.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::layer::Layer;
use super::resolve::resolve;
use super::{Config, ConfigError, ConfigErrors, Source};

/// The environment variable that overrides `base_url`.
pub const BASE_URL_ENV: &str = "CODETIER_BASE_URL";

/// `$XDG_CONFIG_HOME/codetier/config.toml`, else `~/.config/codetier/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    crate::paths::config_dir().map(|d| d.join("config.toml"))
}

/// `root/.codetier.toml`.
pub fn workspace_config_path(root: &Path) -> PathBuf {
    root.join(".codetier.toml")
}

pub use crate::paths::home_dir;

/// Configuration files larger than this are refused unread.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What happened to one source, for `codetier doctor` and the server log.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    pub source: Source,
    pub state: SourceState,
    /// True when a layer from this source is part of the configuration in force (after a
    /// rejected update this is the previous, good layer).
    pub in_force: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceState {
    Applied,
    /// Applied without the keys this source may not set (a workspace file's user-only keys).
    Partly(Vec<ConfigError>),
    /// The file does not exist (fine: defaults apply).
    NotFound,
    /// The latest attempt to load this source failed; see the errors.
    Rejected(ConfigErrors),
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.source {
            Source::Defaults => "built-in defaults".to_owned(),
            Source::UserFile(p) => format!("user file {}", p.display()),
            Source::WorkspaceFile(p) => format!("workspace file {}", p.display()),
            Source::InitializationOptions => "initializationOptions".to_owned(),
            Source::DidChangeConfiguration => "workspace/didChangeConfiguration".to_owned(),
            Source::Environment => BASE_URL_ENV.to_owned(),
        };
        match &self.state {
            SourceState::Applied => write!(f, "{what}: applied"),
            SourceState::Partly(refused) => write!(
                f,
                "{what}: applied, except {} refused key(s): {}",
                refused.len(),
                refused
                    .iter()
                    .map(|e| format!("`{}`", e.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            SourceState::NotFound => write!(f, "{what}: not found"),
            SourceState::Rejected(errors) => {
                let kept = if self.in_force {
                    "the previous version stays in force"
                } else {
                    "ignored"
                };
                write!(f, "{what}: rejected ({} error(s), {kept})", errors.len())
            }
        }
    }
}

/// Remembers the layer of every source, so each can be replaced later (a new
/// didChangeConfiguration replaces the previous one whole).
///
/// Every change is all-or-nothing: a layer that does not parse, or that would make the combined
/// configuration invalid, is refused whole, the previous layer of that source stays in force,
/// and the errors are returned. A workspace file's value for a key it may not set (see
/// `schema::Trust`) is not an error: that key alone is refused, the rest of the file applies,
/// and [`Loader::refusals`] names each refused key for the user.
#[derive(Clone, Debug)]
pub struct Loader {
    user: Option<Slot>,
    workspace: Option<Slot>,
    init: Option<Slot>,
    did_change: Option<Slot>,
    env_base_url: Option<String>,
}

#[derive(Clone, Debug)]
struct Slot {
    source: Source,
    layer: Option<Layer>,
    state: SourceState,
}

#[derive(Clone, Copy)]
enum Which {
    User,
    Workspace,
    Init,
    DidChange,
}

impl Default for Loader {
    fn default() -> Self {
        Loader::new()
    }
}

/// The sources an entry point reads, besides the defaults and the environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sources<'a> {
    /// `--config FILE` (must exist); `None` reads the default user file if there is one.
    pub user_file: Option<&'a Path>,
    /// The workspace whose `.codetier.toml` is read; `None`: no workspace.
    pub workspace_root: Option<&'a Path>,
    /// The editor's initializationOptions.
    pub init_options: Option<&'a serde_json::Value>,
}

/// What loading every source gave: the loader (kept for later changes), the configuration in
/// force, and what the user must be told.
#[derive(Debug)]
pub struct Loaded {
    pub loader: Loader,
    /// The combined configuration, or why there is none (then defaults are the safe fallback).
    pub config: Result<Config, ConfigErrors>,
    /// Sources refused whole (bad values, unreadable files), each with its errors.
    pub errors: Vec<ConfigErrors>,
    /// Keys refused alone (a workspace file's user-only keys); their sources still apply.
    pub refused: Vec<ConfigError>,
}

impl Loader {
    /// Loads every source in order: the one way the LSP server, the CLI and `doctor` assemble
    /// their configuration.
    pub fn load(sources: Sources<'_>) -> Loaded {
        let mut loader = Loader::new();
        let mut errors = Vec::new();
        errors.extend(loader.load_user_file(sources.user_file).err());
        errors.extend(loader.load_workspace_file(sources.workspace_root).err());
        if let Some(options) = sources.init_options {
            errors.extend(loader.set_init_options(options).err());
        }
        let config = loader.resolve();
        let refused = loader.refusals();
        Loaded {
            loader,
            config,
            errors,
            refused,
        }
    }

    /// Defaults only; `CODETIER_BASE_URL` is read now and applied by every `resolve`.
    pub fn new() -> Self {
        let env_base_url = std::env::var(BASE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty());
        Loader {
            user: None,
            workspace: None,
            init: None,
            did_change: None,
            env_base_url,
        }
    }

    /// Replaces the `CODETIER_BASE_URL` value read by `new` (tests, and callers that read the
    /// environment themselves).
    pub fn with_env_base_url(mut self, url: Option<String>) -> Self {
        self.env_base_url = url.filter(|u| !u.trim().is_empty());
        self
    }

    /// Loads the user file: `path` when given (`--config FILE`: it must exist), else
    /// [`user_config_path`] (a missing file is fine).
    pub fn with_user_file(mut self, path: Option<&Path>) -> Result<Self, ConfigErrors> {
        self.load_user_file(path)?;
        Ok(self)
    }

    /// Loads `root/.codetier.toml` if it exists; `None` (no workspace) does nothing.
    pub fn with_workspace_file(mut self, root: Option<&Path>) -> Result<Self, ConfigErrors> {
        self.load_workspace_file(root)?;
        Ok(self)
    }

    /// As [`Loader::with_user_file`], keeping the loader (and the previous user layer) on error.
    pub fn load_user_file(&mut self, path: Option<&Path>) -> Result<(), ConfigErrors> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match user_config_path() {
                Some(p) => (p, false),
                None => return Ok(()),
            },
        };
        self.load_user_file_at(&path, required)
    }

    pub(super) fn load_user_file_at(
        &mut self,
        path: &Path,
        required: bool,
    ) -> Result<(), ConfigErrors> {
        let source = Source::UserFile(path.to_path_buf());
        let layer = read_layer(path, &source, required);
        self.replace(Which::User, source, layer)
    }

    /// As [`Loader::with_workspace_file`], keeping the loader (and the previous workspace layer)
    /// on error. Call again when the file changes.
    pub fn load_workspace_file(&mut self, root: Option<&Path>) -> Result<(), ConfigErrors> {
        let Some(root) = root else { return Ok(()) };
        let path = workspace_config_path(root);
        let source = Source::WorkspaceFile(path.clone());
        let layer = read_layer(&path, &source, false);
        self.replace(Which::Workspace, source, layer)
    }

    /// Sets the initializationOptions layer (`null`: none). Accepts the settings object itself
    /// or one wrapped as `{ "codetier": { ... } }`.
    pub fn set_init_options(&mut self, value: &serde_json::Value) -> Result<(), ConfigErrors> {
        let source = Source::InitializationOptions;
        let value = unwrap_section(value);
        let layer = if value.is_null() {
            Ok(None)
        } else {
            Layer::from_json(value, source.clone()).map(Some)
        };
        self.replace(Which::Init, source, layer)
    }

    /// Replaces the didChangeConfiguration layer with the settings of a new notification.
    /// Accepts `{ "codetier": { ... } }` (VS Code sends `settings.codetier` that way) or the
    /// inner object. `null` settings (a client using the pull model) change nothing.
    pub fn set_did_change(&mut self, value: &serde_json::Value) -> Result<(), ConfigErrors> {
        let value = unwrap_section(value);
        if value.is_null() {
            return Ok(());
        }
        let source = Source::DidChangeConfiguration;
        let layer = Layer::from_json(value, source.clone()).map(Some);
        self.replace(Which::DidChange, source, layer)
    }

    /// Combines the layers in force over the defaults, applies `CODETIER_BASE_URL` and validates.
    pub fn resolve(&self) -> Result<Config, ConfigErrors> {
        let layers: Vec<(&Source, &Layer)> =
            [&self.user, &self.workspace, &self.init, &self.did_change]
                .into_iter()
                .flatten()
                .filter_map(|slot| slot.layer.as_ref().map(|l| (&slot.source, l)))
                .collect();
        resolve(&layers, self.env_base_url.as_deref())
    }

    /// Every source looked at, lowest first, with what happened to it.
    pub fn sources(&self) -> Vec<SourceInfo> {
        let mut out = vec![SourceInfo {
            source: Source::Defaults,
            state: SourceState::Applied,
            in_force: true,
        }];
        for slot in [&self.user, &self.workspace, &self.init, &self.did_change]
            .into_iter()
            .flatten()
        {
            out.push(SourceInfo {
                source: slot.source.clone(),
                state: slot.state.clone(),
                in_force: slot.layer.is_some(),
            });
        }
        if self.env_base_url.is_some() {
            out.push(SourceInfo {
                source: Source::Environment,
                state: SourceState::Applied,
                in_force: true,
            });
        }
        out
    }

    /// The keys refused from the layers in force, each naming its source and why.
    pub fn refusals(&self) -> Vec<ConfigError> {
        [&self.user, &self.workspace, &self.init, &self.did_change]
            .into_iter()
            .flatten()
            .filter_map(|slot| slot.layer.as_ref())
            .flat_map(|layer| layer.refused.iter().cloned())
            .collect()
    }

    fn slot(&mut self, which: Which) -> &mut Option<Slot> {
        match which {
            Which::User => &mut self.user,
            Which::Workspace => &mut self.workspace,
            Which::Init => &mut self.init,
            Which::DidChange => &mut self.did_change,
        }
    }

    /// Puts `layer` in place of `which`'s current layer if it parsed and the combination
    /// resolves; otherwise keeps the current layer and records the rejection.
    fn replace(
        &mut self,
        which: Which,
        source: Source,
        layer: Result<Option<Layer>, ConfigErrors>,
    ) -> Result<(), ConfigErrors> {
        let outcome = layer.and_then(|layer| {
            let mut trial = self.clone();
            let state = match &layer {
                None => SourceState::NotFound,
                Some(l) if l.refused.is_empty() => SourceState::Applied,
                Some(l) => SourceState::Partly(l.refused.clone()),
            };
            *trial.slot(which) = Some(Slot {
                source: source.clone(),
                layer,
                state,
            });
            trial.resolve().map(|_| trial)
        });
        match outcome {
            Ok(trial) => {
                *self = trial;
                Ok(())
            }
            Err(errors) => {
                // The layer in force keeps the source it came from.
                let (source, layer) = match self.slot(which).take() {
                    Some(Slot {
                        source,
                        layer: Some(layer),
                        ..
                    }) => (source, Some(layer)),
                    _ => (source, None),
                };
                let state = SourceState::Rejected(errors.clone());
                *self.slot(which) = Some(Slot {
                    source,
                    layer,
                    state,
                });
                Err(errors)
            }
        }
    }
}

fn unwrap_section(value: &serde_json::Value) -> &serde_json::Value {
    value.get("codetier").unwrap_or(value)
}

fn read_layer(path: &Path, source: &Source, required: bool) -> Result<Option<Layer>, ConfigErrors> {
    let error = |message: String| ConfigErrors::one(ConfigError::new(source, "", message));
    match read_config_file(path) {
        Ok(text) => Layer::from_toml(&text, source.clone()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(error(e.to_string())),
        Err(e) => Err(error(format!("cannot read the file: {e}"))),
    }
}

/// Reads a configuration file that is a regular file (or a link to one) of at most
/// [`MAX_FILE_BYTES`]. Anything else, a device, a pipe, `/dev/stdin`, a directory, is refused
/// before it is opened, so it can neither block nor stream without end.
fn read_config_file(path: &Path) -> std::io::Result<String> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            return Err(invalid(
                "not a regular file, so it is not read as configuration".into(),
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "the file is {} bytes; configuration files are read up to {MAX_FILE_BYTES} bytes",
                meta.len()
            )));
        }
        Ok(())
    };
    check(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    // The path may have been swapped between the check and the open: check what was opened.
    check(&file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid(format!(
            "the file grew past {MAX_FILE_BYTES} bytes while it was read"
        )));
    }
    String::from_utf8(bytes).map_err(|_| invalid("the file is not UTF-8 text".into()))
}
