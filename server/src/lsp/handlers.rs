//! Handlers for the requests and notifications the dispatcher routes itself: each parses
//! its parameters and snapshots the document synchronously, then returns the async rest.

pub mod code_action;
pub mod command;
pub mod hover;
pub mod publish;
pub mod sync;
pub mod view_file_text;

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};

use super::session::Session;

/// Methods whose handlers need the arrival-time snapshot or the request's cancellation.
pub fn is_ours(method: &str) -> bool {
    matches!(
        method,
        "textDocument/codeAction"
            | "textDocument/hover"
            | "workspace/executeCommand"
            | "codetier/viewFileText"
    )
}

pub type Reply = BoxFuture<'static, Result<Value>>;

/// Called synchronously in arrival order; the returned future does the waiting.
pub fn route(
    session: &Arc<Session>,
    method: &str,
    params: Value,
    cancel: CancellationToken,
) -> Reply {
    let work = match method {
        "textDocument/codeAction" => parse(params).map(|p| code_action::handle(session, p)),
        "textDocument/hover" => parse(params).map(|p| hover::handle(session, p)),
        "workspace/executeCommand" => parse(params).map(|p| command::handle(session, p, cancel)),
        "codetier/viewFileText" => parse(params).map(|p| view_file_text::handle(session, p)),
        _ => Err(Error::method_not_found()),
    };
    match work {
        Ok(reply) => reply,
        Err(err) => futures::future::ready(Err(err)).boxed(),
    }
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T> {
    serde_json::from_value(params)
        .map_err(|e| Error::invalid_params(format!("invalid parameters: {e}")))
}

pub fn ready(result: Result<Value>) -> Reply {
    futures::future::ready(result).boxed()
}

/// An error the user should read, with a JSON-RPC code.
pub fn failure(code: i64, message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(code),
        message: message.into().into(),
        data: None,
    }
}

pub fn unknown_document(uri: &str) -> Error {
    Error::invalid_params(format!(
        "codetier has no open document {uri}: open it first (textDocument/didOpen)"
    ))
}
