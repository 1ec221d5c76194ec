//! Requests and notifications the server sends to the editor, each request under a timeout
//! so an editor that never answers cannot wedge a handler slot.

use std::time::Duration;

use tower_lsp_server::ls_types::{self as lsp, notification, request};
use tower_lsp_server::Client;

/// How long the server waits for the editor to answer one of its requests.
pub const EDITOR_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error("the editor did not answer {0} within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the editor answered {0} with an error: {1}")]
    Failed(&'static str, String),
}

/// Sends a request to the editor and waits at most [`EDITOR_REPLY_TIMEOUT`].
pub async fn request<R>(client: &Client, params: R::Params) -> Result<R::Result, EditorError>
where
    R: request::Request,
{
    match tokio::time::timeout(EDITOR_REPLY_TIMEOUT, client.send_request::<R>(params)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(err)) => Err(EditorError::Failed(R::METHOD, err.message.to_string())),
        Err(_) => Err(EditorError::Timeout(R::METHOD, EDITOR_REPLY_TIMEOUT)),
    }
}

pub async fn show_message(client: &Client, typ: lsp::MessageType, message: impl Into<String>) {
    client
        .send_notification::<notification::ShowMessage>(lsp::ShowMessageParams {
            typ,
            message: message.into(),
        })
        .await;
}

/// Work-done progress of one command.
pub struct Progress {
    client: Client,
    token: Option<lsp::ProgressToken>,
}

impl Progress {
    /// Uses the client's token, or creates one when the client supports it.
    pub async fn begin(
        client: &Client,
        given: Option<lsp::ProgressToken>,
        create: Option<String>,
        title: String,
    ) -> Progress {
        let token = match (given, create) {
            (Some(t), _) => Some(t),
            (None, Some(name)) => {
                let token = lsp::ProgressToken::String(name);
                match request::<request::WorkDoneProgressCreate>(
                    client,
                    lsp::WorkDoneProgressCreateParams {
                        token: token.clone(),
                    },
                )
                .await
                {
                    Ok(()) => Some(token),
                    Err(err) => {
                        tracing::debug!("no progress for this command: {err}");
                        None
                    }
                }
            }
            (None, None) => None,
        };
        let progress = Progress {
            client: client.clone(),
            token,
        };
        progress
            .send(lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
                title,
                cancellable: Some(true),
                message: Some("asking…".into()),
                percentage: None,
            }))
            .await;
        progress
    }

    pub fn token(&self) -> Option<&lsp::ProgressToken> {
        self.token.as_ref()
    }

    pub async fn report(&self, message: String) {
        self.send(lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
            cancellable: Some(true),
            message: Some(message),
            percentage: None,
        }))
        .await;
    }

    pub async fn end(&self, message: String) {
        self.send(lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
            message: Some(message),
        }))
        .await;
    }

    async fn send(&self, value: lsp::WorkDoneProgress) {
        if let Some(token) = &self.token {
            self.client
                .send_notification::<notification::Progress>(lsp::ProgressParams {
                    token: token.clone(),
                    value: lsp::ProgressParamsValue::WorkDone(value),
                })
                .await;
        }
    }
}

/// Shows the disk cache's warning (unusable, or turned off after an error) once.
pub async fn show_cache_warning(client: &Client, engine: &crate::engine::Engine) {
    if let Some(warning) = engine.cache().take_warning() {
        show_message(client, lsp::MessageType::WARNING, warning).await;
    }
}
