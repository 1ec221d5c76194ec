//! The commands codetier runs through `workspace/executeCommand`: identifier, title and argument
//! type, shared by the code actions that offer them and the handler that runs them.

use serde::{Deserialize, Serialize};
use tower_lsp_server::ls_types as lsp;

use super::error::LspError;
use crate::action::Action;

/// Every command the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// One of the AI actions, with [`ActionArgs`].
    Run(Action),
    /// The session's usage, without arguments.
    Usage,
}

impl Command {
    pub const ALL: [Command; 4] = [
        Command::Run(Action::Explain),
        Command::Run(Action::Generate),
        Command::Run(Action::Review),
        Command::Usage,
    ];

    /// The identifier editors send (`codetier.explain`, …).
    pub fn id(self) -> &'static str {
        match self {
            Command::Run(Action::Explain) => "codetier.explain",
            Command::Run(Action::Generate) => "codetier.generate",
            Command::Run(Action::Review) => "codetier.review",
            Command::Usage => "codetier.usage",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Command::Run(action) => action.title(),
            Command::Usage => "Show usage",
        }
    }

    pub fn parse(id: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.id() == id)
    }

    /// `executeCommandProvider.commands`.
    pub fn ids() -> Vec<String> {
        Command::ALL.iter().map(|c| c.id().to_owned()).collect()
    }
}

/// The argument of an action command, written by the code-action list and read back here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionArgs {
    pub uri: String,
    pub range: lsp::Range,
    /// The tier to ask instead of the action's own.
    #[serde(default)]
    pub tier: Option<String>,
    /// Skip the cache.
    #[serde(default)]
    pub fresh: bool,
    /// Other tools' diagnostics at the range, as `source: message`.
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// An escalation: the earlier answer to ask again (on `tier`) and replace.
    #[serde(default)]
    pub answer: Option<u64>,
}

impl ActionArgs {
    /// The command that runs `action` with these arguments, titled `title`.
    pub fn command(&self, action: Action, title: String) -> lsp::Command {
        lsp::Command {
            title,
            command: Command::Run(action).id().to_owned(),
            arguments: Some(vec![serde_json::to_value(self).unwrap_or_default()]),
        }
    }
}

/// A parsed `workspace/executeCommand`.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    Run { action: Action, args: ActionArgs },
    Usage,
}

impl Invocation {
    pub fn parse(params: lsp::ExecuteCommandParams) -> Result<Invocation, LspError> {
        let id = params.command;
        let Some(command) = Command::parse(&id) else {
            let known: Vec<&str> = Command::ALL.iter().map(|c| c.id()).collect();
            return Err(LspError::invalid_params(format!(
                "unknown command `{id}`; codetier runs {}",
                known.join(", ")
            )));
        };
        let action = match command {
            Command::Usage => return Ok(Invocation::Usage),
            Command::Run(action) => action,
        };
        match params.arguments.into_iter().next() {
            Some(arg) => serde_json::from_value(arg)
                .map(|args| Invocation::Run { action, args })
                .map_err(|e| LspError::invalid_params(format!("{id}: bad argument: {e}"))),
            None => Err(LspError::invalid_params(format!(
                "{id} expects one argument {{ uri, range, tier?, fresh? }}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(command: &str, arguments: Vec<serde_json::Value>) -> lsp::ExecuteCommandParams {
        lsp::ExecuteCommandParams {
            command: command.into(),
            arguments,
            work_done_progress_params: Default::default(),
        }
    }

    #[test]
    fn what_the_code_action_list_writes_the_handler_reads() {
        let args = ActionArgs {
            uri: "file:///a.rs".into(),
            range: lsp::Range::new(lsp::Position::new(1, 0), lsp::Position::new(2, 3)),
            tier: Some("pro".into()),
            fresh: true,
            diagnostics: vec!["rustc: unused".into()],
            answer: Some(7),
        };
        for action in Action::ALL {
            let command = args.command(action, "t".into());
            let parsed = Invocation::parse(params(
                &command.command,
                command.arguments.unwrap_or_default(),
            ));
            assert_eq!(
                parsed,
                Ok(Invocation::Run {
                    action,
                    args: args.clone()
                })
            );
        }
    }

    #[test]
    fn every_command_parses_from_its_id_and_unknown_ones_are_named() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.id()), Some(c));
        }
        assert_eq!(
            Invocation::parse(params("codetier.usage", vec![])),
            Ok(Invocation::Usage)
        );
        let err = Invocation::parse(params("codetier.nope", vec![])).unwrap_err();
        assert!(err.message.contains("codetier.explain"), "{err}");
        let err = Invocation::parse(params("codetier.review", vec![])).unwrap_err();
        assert!(err.message.contains("expects one argument"), "{err}");
        let err =
            Invocation::parse(params("codetier.review", vec![json!({"uri": 3})])).unwrap_err();
        assert!(err.message.contains("bad argument"), "{err}");
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let parsed = Invocation::parse(params(
            "codetier.explain",
            vec![
                json!({"uri": "u", "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}}),
            ],
        ));
        let Ok(Invocation::Run { args, .. }) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!((args.tier, args.fresh, args.answer), (None, false, None));
    }
}
