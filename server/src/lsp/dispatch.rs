//! The tower service around tower-lsp-server's: applies document notifications in arrival
//! order, sees cancellations the moment they arrive, stamps requests with the document
//! snapshot of their arrival, and turns handler panics into error responses.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use tower::Service;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Id, Request, Response};
use tower_lsp_server::ExitedError;

use super::framing;
use super::handlers;
use super::session::Session;

pub struct Dispatch<S> {
    inner: S,
    session: Arc<Session>,
}

impl<S> Dispatch<S> {
    pub fn new(inner: S, session: Arc<Session>) -> Self {
        Dispatch { inner, session }
    }
}

type Reply = Result<Option<Response>, ExitedError>;

impl<S> Service<Request> for Dispatch<S>
where
    S: Service<Request, Response = Option<Response>, Error = ExitedError>,
    S::Future: Send + 'static,
{
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = BoxFuture<'static, Reply>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Runs synchronously, in the order messages arrive: everything that must not be
    /// reordered happens here, before any future is queued.
    fn call(&mut self, req: Request) -> Self::Future {
        let session = &self.session;
        if session.shutdown_requested() && req.method() != "exit" {
            // After `shutdown` the spec allows only `exit`: requests get InvalidRequest,
            // notifications are dropped.
            let reply = req.id().cloned().map(|id| {
                Response::from_error(
                    id,
                    Error {
                        code: ErrorCode::InvalidRequest,
                        message: "the server is shutting down: only `exit` is accepted".into(),
                        data: None,
                    },
                )
            });
            return futures::future::ready(Ok(reply)).boxed();
        }
        match req.method() {
            "shutdown" if req.id().is_some() => session.mark_shutdown_requested(),
            "exit" => session.mark_exit(),
            method
                if method.starts_with("$/")
                    && method != framing::INVALID_MESSAGE
                    && req.id().is_some() =>
            {
                // `$/` notifications may be ignored, but a `$/` request must be answered.
                let (method, id, _) = req.into_parts();
                let err = Error {
                    code: ErrorCode::MethodNotFound,
                    message: format!("codetier does not implement {method}").into(),
                    data: None,
                };
                let id = id.unwrap_or(Id::Null);
                return futures::future::ready(Ok(Some(Response::from_error(id, err)))).boxed();
            }
            _ => {}
        }
        match req.method() {
            "textDocument/didOpen" | "textDocument/didChange" | "textDocument/didClose" => {
                if session.is_initialized() {
                    let (method, _, params) = req.into_parts();
                    handlers::sync::apply(session, &method, params.unwrap_or(Value::Null));
                }
                return futures::future::ready(Ok(None)).boxed();
            }
            "$/cancelRequest" => {
                if let Some(id) = req.params().and_then(|p| p.get("id")) {
                    session.cancel_request(&id_key_value(id));
                }
            }
            framing::INVALID_MESSAGE => {
                return futures::future::ready(Ok(Some(rejected(req)))).boxed()
            }
            "window/workDoneProgress/cancel" => {
                if let Some(token) = req.params().and_then(|p| p.get("token")) {
                    session.cancel_progress(&token_key(token));
                }
                return futures::future::ready(Ok(None)).boxed();
            }
            method if handlers::is_ours(method) => {
                let (method, id, params) = req.into_parts();
                let Some(id) = id else {
                    tracing::warn!(%method, "ignoring {method} sent as a notification");
                    return futures::future::ready(Ok(None)).boxed();
                };
                if !session.is_initialized() {
                    let err = Error {
                        code: ErrorCode::ServerError(-32002),
                        message: "server not initialized".into(),
                        data: None,
                    };
                    return futures::future::ready(Ok(Some(Response::from_error(id, err)))).boxed();
                }
                // Stamped now: the handler sees the document as it was when the request arrived.
                let key = id_key(&id);
                let cancel = session.register_request(key.clone());
                let work = handlers::route(
                    session,
                    &method,
                    params.unwrap_or(Value::Null),
                    cancel.clone(),
                );
                let session = session.clone();
                let label = method.to_string();
                return async move {
                    let result = tokio::select! {
                        biased;
                        () = cancel.cancelled() => Err(Error::request_cancelled()),
                        r = AssertUnwindSafe(work).catch_unwind() => r.unwrap_or_else(|panic| Err(panicked(&label, &panic))),
                    };
                    session.finish_request(&key);
                    Ok(Some(Response::from_parts(id, result)))
                }
                .boxed();
            }
            _ => {}
        }
        let id = req.id().cloned();
        let label = req.method().to_owned();
        let fut = self.inner.call(req);
        async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(reply) => reply,
                Err(panic) => {
                    let err = panicked(&label, &panic);
                    Ok(id.map(|id| Response::from_error(id, err)))
                }
            }
        }
        .boxed()
    }
}

/// The error response for input the framing guard rejected.
fn rejected(note: Request) -> Response {
    let params = note.params().cloned().unwrap_or_default();
    let id = match &params["id"] {
        Value::Number(n) => n.as_i64().map_or(Id::Null, Id::Number),
        Value::String(s) => Id::String(s.clone()),
        _ => Id::Null,
    };
    let code = params["code"].as_i64().unwrap_or(-32700);
    let message = params["message"].as_str().unwrap_or("invalid message");
    Response::from_error(
        id,
        Error {
            code: ErrorCode::from(code),
            message: message.to_owned().into(),
            data: None,
        },
    )
}

fn panicked(method: &str, panic: &Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(method, "handler panicked: {what}");
    Error {
        code: ErrorCode::InternalError,
        message: format!("codetier hit an internal error while handling {method}; the server keeps running (details in its log)").into(),
        data: None,
    }
}

pub fn id_key(id: &Id) -> String {
    match id {
        Id::Number(n) => n.to_string(),
        Id::String(s) => format!("s:{s}"),
        Id::Null => "null".into(),
    }
}

fn id_key_value(id: &Value) -> String {
    match id {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("s:{s}"),
        _ => "null".into(),
    }
}

pub fn token_key(token: &Value) -> String {
    match token {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
