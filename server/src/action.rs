//! The three AI actions the product offers, named once for configuration, prompts, the cache and both front ends.

use serde::{Deserialize, Serialize};

/// The three AI actions the product offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Explain,
    Generate,
    Review,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Explain, Action::Generate, Action::Review];

    /// Stable lowercase name, used in commands, cache keys and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Explain => "explain",
            Action::Generate => "generate",
            Action::Review => "review",
        }
    }

    /// What the user reads in a code-action menu, before the tier.
    pub fn title(self) -> &'static str {
        match self {
            Action::Explain => "Explain bug",
            Action::Generate => "Generate function",
            Action::Review => "Review selection",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}
