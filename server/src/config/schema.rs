//! The vocabulary of the one configuration declaration: a key, the kind of value it takes, and who may set it.
//!
//! Every key is declared once, with the `settings!` macro in `config.rs`: its Rust type, default,
//! documentation, [`Trust`] and [`Kind`]. The validation of a source (`layer.rs`), the merge of
//! sources (`resolve.rs`), the unknown-key suggestions, the error messages and the check of the
//! VS Code extension's settings all read that declaration; none lists keys of its own.

/// One key of one section.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The key as written in TOML and JSON (`memory_entries`).
    pub name: &'static str,
    /// The documentation comment of the declaration.
    pub doc: &'static str,
    pub trust: Trust,
    pub kind: Kind,
}

/// Who may set a key. The user's own sources are the user file, `--config`, the editor's
/// initializationOptions and didChangeConfiguration (built by the editor integrations from user
/// settings only) and the environment; a workspace file travels with code that may be hostile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Any source, a workspace file included: it cannot redirect the key, loosen privacy or spend more.
    Any,
    /// Only the user's own sources.
    User,
    /// A workspace may turn it on (`true`), never off.
    WorkspaceMayEnable,
    /// A workspace may turn it off (`false`), never on.
    WorkspaceMayDisable,
    /// A workspace may add entries, which are appended to the list in force; only the user may
    /// replace (and so shorten) the list.
    WorkspaceMayAdd,
}

impl Trust {
    /// Whether a workspace may set this key to anything at all.
    pub fn workspace_may_set(self) -> bool {
        self != Trust::User
    }

    /// Why a workspace value is refused, in words a user reads after "a workspace file ...".
    pub fn workspace_limit(self) -> &'static str {
        match self {
            Trust::Any => "",
            Trust::User => "may not set this key",
            Trust::WorkspaceMayEnable => "may only turn this on",
            Trust::WorkspaceMayDisable => "may only turn this off",
            Trust::WorkspaceMayAdd => "may only add entries to this list",
        }
    }
}

/// The kind of value a key takes: how a source's value is checked and normalised, how sources
/// merge, and which JSON type editors declare for it.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    /// An integer in `min..=max`.
    Uint {
        min: u64,
        max: u64,
    },
    /// USD per million tokens, between 0 and 10,000.
    Price,
    /// An amount in USD, between 0 and 1,000,000.
    Usd,
    /// A non-empty string, trimmed.
    Text,
    /// An http(s) URL: plain http only to a loopback host (see [`super::check_base_url`]).
    BaseUrl,
    /// The name of an environment variable.
    EnvName,
    /// One of [`super::LOG_LEVELS`].
    LogLevel,
    /// One of the given words (lower case).
    Choice(&'static [&'static str]),
    /// A path; `""` means not set and a leading `~/` is the home directory.
    Path,
    /// The name of a tier.
    TierName,
    /// A list of tier names.
    TierNames,
    /// A list of glob patterns.
    Globs,
    /// A JSON table merged key by key into the request body; a `null` value removes that key.
    Body,
    /// A table of the given keys.
    Section(&'static [Key]),
    /// A table of named entries (tiers), each a table of the given keys. A new entry starts from
    /// `entry()`.
    Map {
        keys: &'static [Key],
        entry: fn() -> serde_json::Value,
    },
}

impl Kind {
    /// The JSON type an editor's settings schema declares for a value of this kind.
    pub fn json_type(self) -> &'static str {
        match self {
            Kind::Bool => "boolean",
            Kind::Uint { .. } => "integer",
            Kind::Price | Kind::Usd => "number",
            Kind::Text
            | Kind::BaseUrl
            | Kind::EnvName
            | Kind::LogLevel
            | Kind::Choice(_)
            | Kind::Path
            | Kind::TierName => "string",
            Kind::TierNames | Kind::Globs => "array",
            Kind::Body | Kind::Section(_) | Kind::Map { .. } => "object",
        }
    }
}

/// The key named `name` among `keys`.
pub fn find(keys: &'static [Key], name: &str) -> Option<&'static Key> {
    keys.iter().find(|k| k.name == name)
}

/// Every leaf key under `keys` as `(dotted name, key)`, depth first; a [`Kind::Map`] is one leaf
/// (its entries are named by the user) and so is a [`Kind::Body`].
pub fn leaves(keys: &'static [Key]) -> Vec<(String, &'static Key)> {
    let mut out = Vec::new();
    collect(keys, "", &mut out);
    out
}

fn collect(keys: &'static [Key], prefix: &str, out: &mut Vec<(String, &'static Key)>) {
    for key in keys {
        let name = if prefix.is_empty() {
            key.name.to_owned()
        } else {
            format!("{prefix}.{}", key.name)
        };
        match key.kind {
            Kind::Section(sub) => collect(sub, &name, out),
            _ => out.push((name, key)),
        }
    }
}

/// Declares a section of the configuration once: the struct with its documented fields, its
/// `Default`, and `KEYS`, the schema every other part of `config` reads.
///
/// ```text
/// settings! {
///     /// Docs of the section.
///     pub struct HedgeConfig {
///         /// Docs of the key.
///         enabled: bool = true, User, Kind::Bool;
///     }
/// }
/// ```
macro_rules! settings {
    ($(
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr, $trust:ident, $kind:expr;
            )*
        }
    )*) => {
        $(
            $(#[doc = $sdoc])*
            #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
            pub struct $name {
                $( $(#[doc = $doc])+ pub $field: $ty, )*
            }

            impl Default for $name {
                fn default() -> Self {
                    $name { $( $field: $default, )* }
                }
            }

            impl $name {
                /// The schema of this section, one entry per key, in declaration order.
                pub const KEYS: &'static [$crate::config::schema::Key] = &[
                    $(
                        $crate::config::schema::Key {
                            name: stringify!($field),
                            doc: concat!($($doc),+),
                            trust: $crate::config::schema::Trust::$trust,
                            kind: $kind,
                        },
                    )*
                ];
            }
        )*
    };
}

pub(crate) use settings;
