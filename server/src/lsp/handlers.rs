//! Handlers for the requests and notifications the dispatcher routes itself: each is typed by
//! the request it serves, parses nothing itself, snapshots the document synchronously, and
//! returns the async rest.

pub mod code_action;
pub mod command;
pub mod completion;
mod deliver;
pub mod hover;
pub mod inline_completion;
pub mod publish;
pub mod sync;
mod usage;
pub mod view_file_text;

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::request::{
    CodeActionRequest, Completion, ExecuteCommand, HoverRequest, InlineCompletionRequest, Request,
};

use super::error::{Code, LspError, LspResult};
use super::session::Session;
use view_file_text::ViewFileText;

/// Methods whose handlers need the arrival-time snapshot or the request's cancellation.
pub fn is_ours(method: &str) -> bool {
    [
        CodeActionRequest::METHOD,
        HoverRequest::METHOD,
        ExecuteCommand::METHOD,
        ViewFileText::METHOD,
        InlineCompletionRequest::METHOD,
        Completion::METHOD,
    ]
    .contains(&method)
}

/// What the dispatcher sends back: the result as JSON, or the JSON-RPC error.
pub type Reply = BoxFuture<'static, jsonrpc::Result<Value>>;

/// What a handler of request `R` returns: `R`'s own result type, or the error.
pub type Handled<R> = BoxFuture<'static, LspResult<<R as Request>::Result>>;

/// Called synchronously in arrival order; the returned future does the waiting.
pub fn route(
    session: &Arc<Session>,
    method: &str,
    params: Value,
    cancel: CancellationToken,
) -> Reply {
    match method {
        CodeActionRequest::METHOD => {
            serve::<CodeActionRequest>(params, |p| code_action::handle(session, p))
        }
        HoverRequest::METHOD => serve::<HoverRequest>(params, |p| hover::handle(session, p)),
        ExecuteCommand::METHOD => {
            serve::<ExecuteCommand>(params, |p| command::handle(session, p, cancel))
        }
        ViewFileText::METHOD => {
            serve::<ViewFileText>(params, |p| view_file_text::handle(session, p))
        }
        InlineCompletionRequest::METHOD => serve::<InlineCompletionRequest>(params, |p| {
            inline_completion::handle(session, p, cancel)
        }),
        Completion::METHOD => {
            serve::<Completion>(params, |p| completion::handle(session, p, cancel))
        }
        _ => fail(LspError::new(
            Code::MethodNotFound,
            format!("codetier does not route {method}"),
        )),
    }
}

/// Parses `R`'s parameters, runs `handler`, and turns its typed result into JSON.
fn serve<R: Request>(params: Value, handler: impl FnOnce(R::Params) -> Handled<R>) -> Reply {
    match serde_json::from_value::<R::Params>(params) {
        Ok(params) => handler(params)
            .map(|result| {
                result
                    .and_then(|r| {
                        serde_json::to_value(r).map_err(|e| LspError::internal(e.to_string()))
                    })
                    .map_err(jsonrpc::Error::from)
            })
            .boxed(),
        Err(e) => fail(LspError::invalid_params(format!(
            "invalid parameters of {}: {e}",
            R::METHOD
        ))),
    }
}

fn fail(error: LspError) -> Reply {
    futures::future::ready(Err(error.into())).boxed()
}

/// A handler's answer that is ready now.
pub fn done<R: Request>(result: LspResult<R::Result>) -> Handled<R> {
    futures::future::ready(result).boxed()
}
