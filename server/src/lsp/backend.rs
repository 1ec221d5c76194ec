//! The `LanguageServer` implementation: lifecycle and configuration. Document sync and the
//! AI requests are routed by the dispatcher before they reach this switchboard.

use std::path::PathBuf;
use std::sync::Arc;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::LanguageServer;

use super::editor;
use super::handlers::{code_action, publish};
use super::proto;
use super::session::{ClientFlags, Session};
use crate::config::{self, Config, ConfigErrors};
use crate::docs::PositionEncoding;
use crate::engine::Engine;

pub struct Backend {
    session: Arc<Session>,
}

impl Backend {
    pub fn new(session: Arc<Session>) -> Backend {
        Backend { session }
    }
}

fn negotiate_encoding(params: &lsp::InitializeParams) -> PositionEncoding {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref());
    match offered {
        Some(kinds) if kinds.contains(&lsp::PositionEncodingKind::UTF8) => PositionEncoding::Utf8,
        _ => PositionEncoding::Utf16,
    }
}

/// The client's capabilities, resolved once into the flags the handlers consult.
fn client_flags(params: &lsp::InitializeParams) -> ClientFlags {
    let caps = &params.capabilities;
    let text = caps.text_document.as_ref();
    let code_action = text.and_then(|t| t.code_action.as_ref());
    ClientFlags {
        work_done_progress: caps
            .window
            .as_ref()
            .and_then(|w| w.work_done_progress)
            .unwrap_or(false),
        apply_edit: caps
            .workspace
            .as_ref()
            .and_then(|w| w.apply_edit)
            .unwrap_or(false),
        document_changes: caps
            .workspace
            .as_ref()
            .and_then(|w| w.workspace_edit.as_ref())
            .and_then(|e| e.document_changes)
            .unwrap_or(false),
        // The first format listed is the one the client prefers; none listed means markdown
        // is fine (every editor we know renders it).
        hover_markdown: text
            .and_then(|t| t.hover.as_ref())
            .and_then(|h| h.content_format.as_ref())
            .is_none_or(|f| f.first().is_none_or(|k| *k == lsp::MarkupKind::Markdown)),
        code_action_literals: code_action
            .and_then(|c| c.code_action_literal_support.as_ref())
            .is_some(),
        is_preferred: code_action
            .and_then(|c| c.is_preferred_support)
            .unwrap_or(false),
        diagnostic_data: text
            .and_then(|t| t.publish_diagnostics.as_ref())
            .and_then(|d| d.data_support)
            .unwrap_or(false),
        inline_completion: text.and_then(|t| t.inline_completion.as_ref()).is_some(),
    }
}

#[allow(deprecated)]
fn workspace_root(params: &lsp::InitializeParams) -> Option<PathBuf> {
    let uri = params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| f.uri.as_str().to_owned())
        .or_else(|| params.root_uri.as_ref().map(|u| u.as_str().to_owned()))?;
    uri.strip_prefix("file://")
        .map(|p| PathBuf::from(crate::engine::display_path(&format!("file://{p}"))))
}

impl Backend {
    /// Builds the configuration from every layer; what went wrong is kept to show the user
    /// once the editor is ready for messages.
    fn configure(&self, params: &lsp::InitializeParams) -> Config {
        let session = &self.session;
        let root = workspace_root(params);
        let loaded = config::Loader::load(config::Sources {
            user_file: session.options.config_file.as_deref(),
            workspace_root: root.as_deref(),
            init_options: params.initialization_options.as_ref(),
        });
        let mut notes: Vec<(lsp::MessageType, String)> = loaded
            .errors
            .iter()
            .map(|e| (lsp::MessageType::ERROR, e.to_string()))
            .collect();
        if !loaded.refused.is_empty() {
            let refused = ConfigErrors(loaded.refused.clone());
            notes.push((lsp::MessageType::WARNING, refused.to_string()));
        }
        let config = match loaded.config {
            Ok(c) => c,
            Err(e) => {
                notes.push((lsp::MessageType::ERROR, e.to_string()));
                Config::default()
            }
        };
        *session.loader.lock().unwrap_or_else(|e| e.into_inner()) = loaded.loader;
        session
            .startup_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(notes);
        config
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: lsp::InitializeParams) -> Result<lsp::InitializeResult> {
        let encoding = negotiate_encoding(&params);
        self.session.set_encoding(encoding);
        let config = self.configure(&params);
        let completion = config.completion.clone();
        match Engine::new(config) {
            Ok(engine) => self.session.set_engine(Arc::new(engine)),
            Err(e) => self
                .session
                .startup_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((
                    lsp::MessageType::ERROR,
                    format!("codetier cannot reach its provider: {e}"),
                )),
        }
        let flags = client_flags(&params);
        self.session.set_initialized(flags);
        publish::start(&self.session);
        // Decided once: a later configuration that turns completions off answers empty lists.
        let inline = completion.enabled && flags.inline_completion;
        let menu = completion.enabled && completion.menu;
        let capabilities = lsp::ServerCapabilities {
            position_encoding: Some(proto::position_encoding_kind(encoding)),
            text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(
                lsp::TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
                    ..Default::default()
                },
            )),
            code_action_provider: Some(lsp::CodeActionProviderCapability::Options(
                lsp::CodeActionOptions {
                    code_action_kinds: Some(code_action::kinds()),
                    resolve_provider: Some(false),
                    ..Default::default()
                },
            )),
            execute_command_provider: Some(lsp::ExecuteCommandOptions {
                commands: super::commands::Command::ids(),
                ..Default::default()
            }),
            hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
            inline_completion_provider: inline.then_some(lsp::OneOf::Left(true)),
            completion_provider: menu.then(lsp::CompletionOptions::default),
            ..Default::default()
        };
        Ok(lsp::InitializeResult {
            capabilities,
            server_info: Some(lsp::ServerInfo {
                name: "codetier".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: lsp::InitializedParams) {
        let notes: Vec<(lsp::MessageType, String)> = std::mem::take(
            &mut *self
                .session
                .startup_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if let Some(client) = self.session.client() {
            for (typ, note) in notes {
                if typ == lsp::MessageType::ERROR {
                    tracing::error!("{note}");
                } else {
                    tracing::warn!("{note}");
                }
                editor::show_message(client, typ, note).await;
            }
        }
    }

    async fn shutdown(&self) -> Result<()> {
        self.session.shutdown_background();
        // The spend and lookups booked in the background reach the team's Redis before the
        // process goes (bounded: a Redis that is away costs at most this).
        if let Some(team) = self.session.engine().and_then(|e| e.team()) {
            team.flush(std::time::Duration::from_millis(500)).await;
        }
        Ok(())
    }

    async fn did_change_configuration(&self, params: lsp::DidChangeConfigurationParams) {
        // The candidate loader replaces the stored one only once its configuration is in force,
        // so a rejected change leaves both the loader and the engine as they were.
        let message = {
            let mut loader = self
                .session
                .loader
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut candidate = loader.clone();
            let resolved = candidate
                .set_did_change(&params.settings)
                .and_then(|()| candidate.resolve());
            match (resolved, self.session.engine()) {
                (Ok(config), Some(engine)) => match engine.set_config(config) {
                    Ok(()) => {
                        *loader = candidate;
                        tracing::info!("configuration updated");
                        return;
                    }
                    Err(e) => format!(
                        "codetier: the new configuration cannot be used ({e}); \
                         the previous one stays in force"
                    ),
                },
                (Ok(_), None) => {
                    *loader = candidate;
                    return;
                }
                (Err(errors), _) => format!("{errors}\nThe previous configuration stays in force."),
            }
        };
        tracing::error!("{message}");
        if let Some(client) = self.session.client() {
            editor::show_message(client, lsp::MessageType::ERROR, message).await;
        }
    }
}
