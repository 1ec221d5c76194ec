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

/// Work-done progress of one command, sent beside the work: creating the token, `begin`, the
/// reports and `end` go out from a task of their own, so an editor that answers
/// `window/workDoneProgress/create` late (or never) delays nothing but its progress UI.
pub struct Progress {
    token: Option<lsp::ProgressToken>,
    steps: Option<tokio::sync::mpsc::UnboundedSender<Step>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Set once the token is usable (given by the editor, or its creation answered).
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

enum Step {
    Report(String),
    End(String),
}

impl Progress {
    /// Uses the editor's token, or creates `create` when the editor supports it; `begin` with
    /// `title` follows once the token is usable.
    pub fn start(
        client: &Client,
        given: Option<lsp::ProgressToken>,
        create: Option<String>,
        title: String,
    ) -> Progress {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (token, needs_create) = match (given, create) {
            (Some(t), _) => (t, false),
            (None, Some(name)) => (lsp::ProgressToken::String(name), true),
            (None, None) => {
                return Progress {
                    token: None,
                    steps: None,
                    task: None,
                    ready: Default::default(),
                }
            }
        };
        let ready = std::sync::Arc::new(AtomicBool::new(!needs_create));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (client, sent, flag) = (client.clone(), token.clone(), ready.clone());
        let task = tokio::spawn(async move {
            if needs_create {
                let params = lsp::WorkDoneProgressCreateParams {
                    token: sent.clone(),
                };
                if let Err(err) = request::<request::WorkDoneProgressCreate>(&client, params).await
                {
                    tracing::debug!("no progress for this command: {err}");
                    return;
                }
                flag.store(true, Ordering::SeqCst);
            }
            let send = |value| {
                client.send_notification::<notification::Progress>(lsp::ProgressParams {
                    token: sent.clone(),
                    value: lsp::ProgressParamsValue::WorkDone(value),
                })
            };
            send(lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
                title,
                cancellable: Some(true),
                message: Some("asking…".into()),
                percentage: None,
            }))
            .await;
            while let Some(step) = rx.recv().await {
                match step {
                    Step::Report(message) => {
                        send(lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
                            cancellable: Some(true),
                            message: Some(message),
                            percentage: None,
                        }))
                        .await
                    }
                    Step::End(message) => {
                        send(lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
                            message: Some(message),
                        }))
                        .await;
                        return;
                    }
                }
            }
        });
        Progress {
            token: Some(token),
            steps: Some(tx),
            task: Some(task),
            ready,
        }
    }

    /// The token, known at once (the editor's, or the one being created).
    pub fn token(&self) -> Option<&lsp::ProgressToken> {
        self.token.as_ref()
    }

    /// Queues a report; never waits.
    pub fn report(&self, message: String) {
        if let Some(steps) = &self.steps {
            let _ = steps.send(Step::Report(message));
        }
    }

    /// Queues the end. Where the token is usable it waits until the end went out, so the
    /// editor reads it before the command's reply; else it never waits for the editor.
    pub async fn end(mut self, message: String) {
        if let Some(steps) = self.steps.take() {
            let _ = steps.send(Step::End(message));
        }
        if let Some(task) = self.task.take() {
            if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = task.await;
            }
        }
    }
}

/// Shows the disk cache's warning (unusable, or turned off after an error) once.
pub async fn show_cache_warning(client: &Client, engine: &crate::engine::Engine) {
    if let Some(warning) = engine.cache().take_warning() {
        show_message(client, lsp::MessageType::WARNING, warning).await;
    }
}
