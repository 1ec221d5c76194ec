//! The tower service around tower-lsp-server's: applies document notifications in arrival
//! order, sees cancellations the moment they arrive, stamps requests with the document
//! snapshot of their arrival, and turns handler panics into error responses.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use tower::Service;
use tower_lsp_server::jsonrpc::{Error, Id, Request, Response};
use tower_lsp_server::ls_types::notification::{
    Cancel, Exit, Notification, WorkDoneProgressCancel,
};
use tower_lsp_server::ls_types::request::{Request as _, Shutdown};
use tower_lsp_server::ExitedError;

use super::error::{Code, LspError};
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
        if session.shutdown_requested() && req.method() != Exit::METHOD {
            // After `shutdown` the spec allows only `exit`: requests get InvalidRequest,
            // notifications are dropped.
            let reply = req.id().cloned().map(|id| {
                let err = LspError::new(
                    Code::InvalidRequest,
                    "the server is shutting down: only `exit` is accepted",
                );
                Response::from_error(id, err.into())
            });
            return ready(reply);
        }
        match req.method() {
            Shutdown::METHOD if req.id().is_some() => session.mark_shutdown_requested(),
            Exit::METHOD => session.mark_exit(),
            method
                if method.starts_with("$/")
                    && method != framing::INVALID_MESSAGE
                    && req.id().is_some() =>
            {
                // `$/` notifications may be ignored, but a `$/` request must be answered.
                let (method, id, _) = req.into_parts();
                let err = LspError::new(
                    Code::MethodNotFound,
                    format!("codetier does not implement {method}"),
                );
                let id = id.unwrap_or(Id::Null);
                return ready(Some(Response::from_error(id, err.into())));
            }
            _ => {}
        }
        match req.method() {
            method if handlers::sync::is_sync(method) => {
                if session.is_initialized() {
                    let (method, _, params) = req.into_parts();
                    handlers::sync::apply(session, &method, params.unwrap_or(Value::Null));
                }
                return ready(None);
            }
            Cancel::METHOD => {
                if let Some(id) = req.params().and_then(|p| p.get("id")) {
                    session.cancel_request(&id_key_value(id));
                }
            }
            framing::INVALID_MESSAGE => return ready(Some(rejected(req))),
            WorkDoneProgressCancel::METHOD => {
                if let Some(token) = req.params().and_then(|p| p.get("token")) {
                    session.cancel_progress(&token_key(token));
                }
                return ready(None);
            }
            method if handlers::is_ours(method) => return ours(session, req),
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

/// One of our requests: refused before `initialize`, else routed to its handler, stamped with
/// the document as it was when the request arrived, and raced against its cancellation.
fn ours(session: &Arc<Session>, req: Request) -> BoxFuture<'static, Reply> {
    let (method, id, params) = req.into_parts();
    let Some(id) = id else {
        tracing::warn!(%method, "ignoring {method} sent as a notification");
        return ready(None);
    };
    if !session.is_initialized() {
        let err = LspError::new(Code::ServerNotInitialized, "server not initialized");
        return ready(Some(Response::from_error(id, err.into())));
    }
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
    async move {
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(LspError::cancelled().into()),
            r = AssertUnwindSafe(work).catch_unwind() => r.unwrap_or_else(|panic| Err(panicked(&label, &panic))),
        };
        session.finish_request(&key);
        Ok(Some(Response::from_parts(id, result)))
    }
    .boxed()
}

/// A reply known at once.
fn ready(reply: Option<Response>) -> BoxFuture<'static, Reply> {
    futures::future::ready(Ok(reply)).boxed()
}

/// The error response for input the framing guard rejected.
fn rejected(note: Request) -> Response {
    let params = note.params().cloned().unwrap_or_default();
    let id = match &params["id"] {
        Value::Number(n) => n.as_i64().map_or(Id::Null, Id::Number),
        Value::String(s) => Id::String(s.clone()),
        _ => Id::Null,
    };
    let code = params["code"]
        .as_i64()
        .map_or(Code::ParseError, Code::from_number);
    let message = params["message"].as_str().unwrap_or("invalid message");
    Response::from_error(id, LspError::new(code, message).into())
}

fn panicked(method: &str, panic: &Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(method, "handler panicked: {what}");
    LspError::internal(format!(
        "codetier hit an internal error while handling {method}; the server keeps running (details in its log)"
    ))
    .into()
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
